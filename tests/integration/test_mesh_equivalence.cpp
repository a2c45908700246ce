// The mesh computes what the single-process engine computes: eval --mesh logits
// against eval's, and greedy output with MTP speculation against greedy output
// without it — each role in its own process over tcp loopback.
#include <fstream>
#include <thread>

#include "tests/integration/mesh_fixture.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

int run(const std::string& args) { return std::system((moemesh_bin() + " " + args + " 2>/dev/null").c_str()); }

nlohmann::json read_json(const std::filesystem::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

// Largest |a - b| over every logit of every position of every sequence.
double max_logit_diff(const nlohmann::json& a, const nlohmann::json& b, const std::string& key) {
  double m = 0;
  for (size_t s = 0; s < a["sequences"].size(); ++s) {
    const auto& x = a["sequences"][s][key];
    const auto& y = b["sequences"][s][key];
    EXPECT_EQ(x.size(), y.size());
    for (size_t p = 0; p < x.size() && p < y.size(); ++p)
      for (size_t v = 0; v < x[p].size(); ++v) m = std::max(m, std::abs(x[p][v].get<double>() - y[p][v].get<double>()));
  }
  return m;
}

}  // namespace

TEST(MeshEquivalence, EvalOnTheMeshEqualsOneProcess) {
  const auto& model = test_model("tiny", true);
  const auto dir = temp_dir("mesh-eval");
  const auto toks = random_tokens(40, 1024, 11);
  nlohmann::json in{{"sequences", {std::vector<int32_t>(toks.begin(), toks.begin() + 25), std::vector<int32_t>(toks.begin() + 25, toks.end())}},
                    {"greedy", {{"prompt", {0, 5, 9}}, {"max_new_tokens", 8}}}};
  std::ofstream(dir / "in.json") << in.dump();
  // f32 products and latent cache everywhere: paths differ only by summation order.
  const std::string io = " --compute exact --kv-cache-dtype f32 --model " + model.string() + " --input " +
                         (dir / "in.json").string() + " --out ";
  ASSERT_EQ(run("eval" + io + (dir / "local.json").string()), 0);
  // One host with every expert, f32 on every hop: each token's experts are summed
  // in the same order as in one process, so the logits are bit-identical.
  ASSERT_EQ(run("eval --mesh" + io + (dir / "one.json").string() + " --set '" + std::string(kOneHost) + "'"), 0);
  // Two hosts holding halves: the dispatcher adds the hosts' partial sums, a different
  // f32 summation order, so equal within rounding.
  ASSERT_EQ(run("eval --mesh" + io + (dir / "two.json").string() +
                R"( --set 'expert_hosts=[{"name": "a", "experts": "0-7"}, {"name": "b", "experts": "8-15"}]')"),
            0);
  // The same over CURVE (every hop encrypted and authenticated): the same bits.
  ASSERT_EQ(run("eval --mesh" + io + (dir / "curve.json").string() + " --set '" + std::string(kOneHost) + "' --set security.curve=on"), 0);
  const auto local = read_json(dir / "local.json"), one = read_json(dir / "one.json"), two = read_json(dir / "two.json");
  const auto sealed = read_json(dir / "curve.json");
  EXPECT_EQ(max_logit_diff(local, sealed, "logits"), 0.0);
  EXPECT_EQ(max_logit_diff(local, sealed, "mtp_logits"), 0.0);
  EXPECT_EQ(sealed["greedy"], local["greedy"]);
  ASSERT_TRUE(local["sequences"][0].contains("mtp_logits"));
  EXPECT_EQ(max_logit_diff(local, one, "logits"), 0.0);
  EXPECT_EQ(max_logit_diff(local, one, "mtp_logits"), 0.0);
  EXPECT_EQ(one["greedy"], local["greedy"]);
  EXPECT_LT(max_logit_diff(local, two, "logits"), 1e-4);
  EXPECT_LT(max_logit_diff(local, two, "mtp_logits"), 1e-4);
  EXPECT_EQ(two["greedy"], local["greedy"]);
}

namespace {
// 16 prompts of different lengths, generated concurrently (continuous batching).
std::vector<std::vector<int32_t>> generate_all(TestMesh& m, const std::vector<std::vector<int32_t>>& prompts, int64_t n) {
  std::vector<std::vector<int32_t>> out(prompts.size());
  std::vector<FinishReason> finish(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      AttentionClient c(m.ctx, m.ep.attention);
      GenerationRequest r;
      r.prompt = prompts[i];
      r.max_new_tokens = n;
      const TokensUpdate u = c.generate(r);
      out[i] = u.tokens;
      finish[i] = u.finish;
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(finish[i], FinishReason::Length) << "prompt " << i;
  return out;
}
}  // namespace

TEST(MeshEquivalence, SpeculativeGreedyEqualsPlainGreedyOn16Prompts) {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 16; ++i) prompts.push_back(random_tokens(3 + (i * 7) % 29, 1024, 100 + i));
  std::vector<std::vector<int32_t>> plain, spec;
  {
    TestMesh m("mesh-plain", {kOneHost, "attention.speculative=0", "dispatch.activations=f32", "compute=exact",
                               "attention.kv_cache_dtype=f32"});
    plain = generate_all(m, prompts, 20);
  }
  nlohmann::json stats;
  {
    TestMesh m("mesh-spec", {kOneHost, "attention.speculative=3", "attention.speculative_max_batch=64", "dispatch.activations=f32",
                              "compute=exact", "attention.kv_cache_dtype=f32"});
    spec = generate_all(m, prompts, 20);
    stats = AttentionClient(m.ctx, m.ep.attention).stats();
  }
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(spec[i], plain[i]) << "prompt " << i;
  // Speculation really ran: drafts were made and verified at every position.
  ASSERT_EQ(stats["drafted"].size(), 3u);
  EXPECT_GT(stats["drafted"][0].get<int64_t>(), 16);
  EXPECT_GT(stats["verify_steps"].get<int64_t>(), 0);
}
