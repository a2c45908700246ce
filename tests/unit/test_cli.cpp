// The moemesh binary end to end: make-model, eval, generate, and their errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

#include "tests/support/test_models.h"

using namespace moemesh::testing;

namespace {
struct CliResult { int code; std::string out; };

CliResult run(const std::string& args) {
  const char* bin = std::getenv("MOEMESH_BIN");
  EXPECT_NE(bin, nullptr) << "MOEMESH_BIN is set by ctest";
  const std::string cmd = std::string(bin ? bin : "moemesh") + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST(Cli, HelpListsSubcommands) {
  const CliResult r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"make-model", "eval", "generate", "bench"}) EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST(Cli, MakeModelIsDeterministicPerSeed) {
  const auto a = temp_dir("mm"), b = temp_dir("mm"), c = temp_dir("mm");
  ASSERT_EQ(run("make-model --preset tiny --dtype fp8 --seed 7 --shard-bytes 1000000 --out " + a.string()).code, 0);
  ASSERT_EQ(run("make-model --preset tiny --dtype fp8 --seed 7 --shard-bytes 1000000 --out " + b.string()).code, 0);
  ASSERT_EQ(run("make-model --preset tiny --dtype fp8 --seed 8 --shard-bytes 1000000 --out " + c.string()).code, 0);
  ASSERT_TRUE(std::filesystem::exists(a / "model.safetensors.index.json"));
  int shards = 0;
  for (const auto& f : std::filesystem::directory_iterator(a)) {
    if (f.path().extension() != ".safetensors") continue;
    ++shards;
    EXPECT_EQ(slurp(f.path()), slurp(b / f.path().filename())) << f.path();
  }
  EXPECT_GT(shards, 1);
  EXPECT_NE(slurp(a / ("model-00001-of-0000" + std::to_string(shards) + ".safetensors")),
            slurp(c / ("model-00001-of-0000" + std::to_string(shards) + ".safetensors")));
  EXPECT_NE(run("make-model --preset huge --out " + a.string()).code, 0);
}

TEST(Cli, EvalWritesTheDocumentedFormat) {
  const auto& model = test_model("tiny");
  const auto dir = temp_dir("eval");
  std::ofstream(dir / "in.json") << R"({"sequences": [[0, 5, 9, 300], [1, 2]], "greedy": {"prompt": [0, 5], "max_new_tokens": 5}})";
  const CliResult r = run("eval --model " + model.string() + " --input " + (dir / "in.json").string() + " --out " +
                    (dir / "out.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(std::ifstream(dir / "out.json"));
  ASSERT_EQ(j["sequences"].size(), 2u);
  EXPECT_EQ(j["sequences"][0]["logits"].size(), 4u);
  EXPECT_EQ(j["sequences"][0]["logits"][0].size(), 1024u);
  EXPECT_EQ(j["sequences"][0]["mtp_logits"].size(), 3u);
  EXPECT_EQ(j["sequences"][1]["mtp_logits"].size(), 1u);
  EXPECT_EQ(j["greedy"]["tokens"].size(), 5u);
  // Greedy continuation and the logits of the same prefix agree.
  const auto l = j["sequences"][0]["logits"][1].get<std::vector<float>>();
  EXPECT_EQ(std::max_element(l.begin(), l.end()) - l.begin(), j["greedy"]["tokens"][0].get<int>());

  // Bad input: a clear message and a failing exit code.
  std::ofstream(dir / "bad.json") << R"({"sequences": [[0, 5, 99999]]})";
  CliResult bad = run("eval --model " + model.string() + " --input " + (dir / "bad.json").string() + " --out " +
                (dir / "o2.json").string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("99999"), std::string::npos) << bad.out;
  std::ofstream(dir / "bad2.json") << R"({"sequences": [[0, "x"]]})";
  bad = run("eval --model " + model.string() + " --input " + (dir / "bad2.json").string() + " --out " +
            (dir / "o2.json").string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("sequences[0]"), std::string::npos) << bad.out;
}

TEST(Cli, GeneratePrintsIdsAndSpeed) {
  const auto& model = test_model("tiny");
  CliResult r = run("generate --model " + model.string() + " --prompt-ids 0,5,9 --max-new-tokens 6 --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tok/s"), std::string::npos);
  const CliResult again = run("generate --model " + model.string() + " --prompt-ids 0,5,9 --max-new-tokens 6 --ignore-eos");
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), again.out.substr(0, again.out.find('\n')));
  r = run("generate --model " + model.string() + " --prompt-ids 0,abc");
  EXPECT_NE(r.code, 0);
  r = run("generate --model " + model.string() + " --prompt-ids 0,5000");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("5000"), std::string::npos);
}
