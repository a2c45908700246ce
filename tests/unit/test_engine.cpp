// The engine against a plain reference forward, and its equivalences across paths.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/safetensors.h"
#include "kernels/cpu/sampling.h"
#include "model/checkpoint_maker.h"
#include "model/engine.h"
#include "model/eval.h"
#include "model/experts.h"
#include "model/speculative.h"
#include "tests/support/reference_model.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

// Every position's logits of `tokens` in one prefill step.
std::vector<std::vector<float>> prefill_logits(Engine& e, SeqId id, const std::vector<int32_t>& tokens) {
  const int64_t V = e.config().vocab_size;
  StepOutput s = e.step({{id, tokens, true}});
  std::vector<std::vector<float>> out;
  for (size_t r = 0; r < tokens.size(); ++r) out.emplace_back(s.logits.begin() + r * V, s.logits.begin() + (r + 1) * V);
  e.release(id);
  return out;
}

std::vector<float> flat(const std::vector<std::vector<float>>& m) {
  std::vector<float> v;
  for (const auto& r : m) v.insert(v.end(), r.begin(), r.end());
  return v;
}

// Logits are O(10) here; f32 accumulation vs double leaves ~1e-5 relative error.
void expect_close(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b, double rel,
                  const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  const Diff d = compare(flat(a), flat(b));
  std::printf("%s: max |diff| %.3g of max |logit| %.3g\n", what.c_str(), d.max_abs, d.max_ref);
  EXPECT_LE(d.max_abs, rel * d.max_ref) << what << ": max |diff| " << d.max_abs << " of max " << d.max_ref;
  for (size_t i = 0; i < a.size(); ++i) {
    const int64_t n = static_cast<int64_t>(a[i].size());
    EXPECT_EQ(cpu::argmax(a[i].data(), n), cpu::argmax(b[i].data(), n)) << what << " position " << i;
  }
}

}  // namespace

class EngineVsReference : public ::testing::TestWithParam<std::pair<std::string, bool>> {};

TEST_P(EngineVsReference, LogitsAndMtpLogitsMatch) {
  const auto& [preset, fp8] = GetParam();
  const auto& dir = test_model(preset, fp8);
  Engine e(dir);
  const auto tokens = random_tokens(12, e.config().vocab_size, 5);
  const ReferenceOutput ref = reference_forward(dir, tokens);
  EvalRequest req;
  req.sequences = {tokens};
  const auto out = run_eval(e, req);
  const auto logits = out["sequences"][0]["logits"].get<std::vector<std::vector<float>>>();
  expect_close(logits, ref.logits, 2e-4, preset + " logits");
  if (e.has_mtp()) {
    const auto mtp = out["sequences"][0]["mtp_logits"].get<std::vector<std::vector<float>>>();
    expect_close(mtp, ref.mtp_logits, 2e-4, preset + " mtp logits");
  }
  EXPECT_EQ(e.cache().used_pages(), 0) << "eval releases its sequences";
}

INSTANTIATE_TEST_SUITE_P(Presets, EngineVsReference,
                         ::testing::Values(std::pair<std::string, bool>{"tiny", false},
                                           std::pair<std::string, bool>{"tiny", true},
                                           std::pair<std::string, bool>{"tiny-nolora", false},
                                           std::pair<std::string, bool>{"tiny-v2", false}));

TEST(Engine, AbsorbedEqualsNaive) {
  for (bool fp8 : {false, true}) {
    const auto& dir = test_model("tiny", fp8);
    EngineOptions naive, absorbed;
    naive.mla_mode = MlaMode::Naive;
    absorbed.mla_mode = MlaMode::Absorbed;
    Engine a(dir, naive), b(dir, absorbed);
    const auto tokens = random_tokens(40, a.config().vocab_size, 9);
    expect_close(prefill_logits(a, 1, tokens), prefill_logits(b, 1, tokens), 5e-5, "absorbed vs naive");
  }
}

TEST(Engine, CachedDecodeEqualsFullRecompute) {
  const auto& dir = test_model("tiny");
  Engine e(dir);
  const int64_t V = e.config().vocab_size;
  const auto tokens = random_tokens(30, V, 13);
  const auto full = prefill_logits(e, 1, tokens);
  // A prefill chunk of 7, then one token at a time.
  std::vector<std::vector<float>> inc;
  StepOutput s = e.step({{2, std::vector<int32_t>(tokens.begin(), tokens.begin() + 7), true}});
  for (int r = 0; r < 7; ++r) inc.emplace_back(s.logits.begin() + r * V, s.logits.begin() + (r + 1) * V);
  for (size_t i = 7; i < tokens.size(); ++i) {
    s = e.step({{2, {tokens[i]}, false}});
    inc.emplace_back(s.logits.begin(), s.logits.end());
  }
  EXPECT_EQ(e.length(2), 30);
  expect_close(inc, full, 5e-5, "cached decode vs recompute");
}

TEST(Engine, BatchOfMixedSequencesEqualsEachAlone) {
  const auto& dir = test_model("tiny");
  Engine e(dir);
  const int64_t V = e.config().vocab_size;
  const auto a = random_tokens(17, V, 21), b = random_tokens(3, V, 22), c = random_tokens(9, V, 23);
  const auto la = prefill_logits(e, 1, a), lb = prefill_logits(e, 1, b), lc = prefill_logits(e, 1, c);
  // Step 1: a and c prefill (all but their last token), b prefill whole.
  StepOutput s = e.step({{10, std::vector<int32_t>(a.begin(), a.end() - 1), false},
                         {11, b, true},
                         {12, std::vector<int32_t>(c.begin(), c.end() - 1), false}});
  std::vector<std::vector<float>> gb;
  for (int r = 0; r < 3; ++r) {
    const float* l = s.logits.data() + (1 + r) * V;  // rows: a-last, b0, b1, b2, c-last
    gb.emplace_back(l, l + V);
  }
  expect_close(gb, lb, 1e-5, "prefill in a batch");
  // Step 2: decode of a and c mixed with a new prefill.
  const auto d = random_tokens(5, V, 24);
  s = e.step({{10, {a.back()}, false}, {13, d, false}, {12, {c.back()}, false}});
  expect_close({std::vector<float>(s.last_logits(0, V), s.last_logits(0, V) + V)}, {la.back()}, 1e-5, "decode a");
  expect_close({std::vector<float>(s.last_logits(2, V), s.last_logits(2, V) + V)}, {lc.back()}, 1e-5, "decode c");
  expect_close({std::vector<float>(s.last_logits(1, V), s.last_logits(1, V) + V)}, {prefill_logits(e, 99, d).back()},
               1e-5, "prefill d");
}

TEST(Engine, Fp8EqualsDequantizedTwin) {
  const auto& fp8 = test_model("tiny", true);
  const auto f32 = temp_dir("twin-f32"), bf16 = temp_dir("twin-bf16");
  dequantize_checkpoint(fp8, f32, DType::F32);
  dequantize_checkpoint(fp8, bf16, DType::BF16);
  Engine q(fp8), t32(f32), t16(bf16);
  EXPECT_TRUE(q.config().fp8_weights);
  EXPECT_FALSE(t32.config().fp8_weights);
  const auto tokens = random_tokens(20, q.config().vocab_size, 31);
  const auto lq = prefill_logits(q, 1, tokens);
  // Same real weights: only summation order differs.
  expect_close(lq, prefill_logits(t32, 1, tokens), 1e-5, "fp8 vs f32 twin");
  // bf16 rounding of fp8 × scale products: within bf16's relative precision.
  const Diff d = compare(flat(lq), flat(prefill_logits(t16, 1, tokens)));
  EXPECT_LE(d.max_abs, 2e-2 * d.max_ref);
}

TEST(Engine, ExpertSubsetsSumToAllExperts) {
  const auto& dir = test_model("tiny", true);
  const ModelConfig cfg = ModelConfig::load(dir);
  Checkpoint ck(dir);
  const int64_t layer = cfg.first_k_dense_replace, H = cfg.hidden_size;
  MoeGate gate(cfg, ck, layer);
  std::vector<int32_t> even, odd;
  for (int32_t e = 0; e < cfg.n_routed_experts; ++e) (e % 2 ? odd : even).push_back(e);
  ExpertSet all(cfg, ck, layer, ExpertSet::all(cfg)), a(cfg, ck, layer, even), b(cfg, ck, layer, odd);
  EXPECT_EQ(a.weight_bytes() + b.weight_bytes(), all.weight_bytes());
  const int64_t T = 25;
  std::vector<float> x(T * H);
  for (int64_t i = 0; i < T * H; ++i) x[i] = std::sin(0.37 * i);
  const Routing r = gate.route(x.data(), T);
  std::vector<float> y_all(T * H, 0.0f), y_sum(T * H, 0.0f);
  all.forward(x.data(), r, y_all.data());
  a.forward(x.data(), r, y_sum.data());
  b.forward(x.data(), r, y_sum.data());
  const Diff d = compare(y_all, y_sum);
  EXPECT_GT(d.max_ref, 0.0);
  EXPECT_LE(d.max_abs, 1e-5 * d.max_ref);
  EXPECT_THROW(ExpertSet(cfg, ck, layer, {int32_t(cfg.n_routed_experts)}), std::out_of_range);
}

TEST(Engine, MtpIncrementalEqualsBatch) {
  const auto& dir = test_model("tiny");
  Engine e(dir);
  const int64_t V = e.config().vocab_size, H = e.config().hidden_size;
  const auto tokens = random_tokens(10, V, 41);
  StepOutput s = e.step({{1, tokens, true}});
  std::vector<int32_t> next(tokens.begin() + 1, tokens.end());
  std::vector<float> all;
  e.mtp_step(1, next, s.hidden.data(), &all);
  e.mtp_truncate(1, 0);
  EXPECT_EQ(e.mtp_length(1), 0);
  std::vector<float> inc, one;
  for (size_t i = 0; i < next.size(); ++i) {
    e.mtp_step(1, {next[i]}, s.hidden.data() + i * H, &one);
    inc.insert(inc.end(), one.begin(), one.end());
  }
  const Diff d = compare(all, inc);
  EXPECT_LE(d.max_abs, 1e-5 * d.max_ref);
  EXPECT_EQ(e.mtp_length(1), 9);
}

TEST(Engine, BadTokenIdsAreRefusedWithoutSideEffects) {
  Engine e(test_model("tiny"));
  const int64_t V = e.config().vocab_size;
  EXPECT_THROW(e.step({{1, {1, 2, int32_t(V)}, false}}), std::out_of_range);
  EXPECT_THROW(e.step({{1, {-1}, false}}), std::out_of_range);
  EXPECT_EQ(e.cache().used_pages(), 0);
  EXPECT_THROW(e.step({{1, {}, false}}), std::invalid_argument);
  EXPECT_THROW(e.step({{1, {1}, false}, {1, {2}, false}}), std::invalid_argument);
  EXPECT_EQ(e.cache().used_pages(), 0);
  // Still serves.
  EXPECT_NO_THROW(e.step({{1, {1, 2, 3}, false}}));
}

TEST(Engine, FullKvCacheIsRefusedCleanly) {
  EngineOptions o;
  o.page_tokens = 16;
  o.kv_tokens = 64;  // 4 pages
  Engine e(test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  e.step({{1, random_tokens(40, V, 1), false}});  // 3 pages
  EXPECT_THROW(e.step({{2, random_tokens(20, V, 2), false}, {3, random_tokens(5, V, 3), false}}), KvCacheFull);
  EXPECT_EQ(e.cache().used_pages(), 3);
  EXPECT_FALSE(e.cache().has(2));
  EXPECT_EQ(e.length(1), 40);
  e.release(1);
  EXPECT_NO_THROW(e.step({{2, random_tokens(60, V, 2), false}}));
}

TEST(Engine, GreedyIsDeterministic) {
  Engine e(test_model("tiny"));
  const auto prompt = random_tokens(6, e.config().vocab_size, 51);
  const auto a = greedy_generate(e, 1, prompt, 12);
  e.release(1);
  const auto b = greedy_generate(e, 2, prompt, 12);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 12u);
}

namespace {
// Copies a checkpoint into a new single-file one, dropping or replacing tensors.
std::filesystem::path rewrite(const std::filesystem::path& src, const std::string& drop,
                              const std::string& reshape = "") {
  const auto out = temp_dir("broken");
  Checkpoint ck(src);
  SafetensorsWriter w;
  for (const auto& name : ck.names()) {
    if (name == drop) continue;
    TensorView t = ck.get(name);
    const auto* p = t.bytes();
    Shape shape = t.shape;
    size_t bytes = t.nbytes();
    if (name == reshape) {
      shape[0] -= 1;
      bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(t.dtype);
    }
    w.add(name, t.dtype, shape, std::vector<uint8_t>(p, p + bytes));
  }
  w.write(out / "model.safetensors");
  std::filesystem::copy_file(src / "config.json", out / "config.json");
  return out;
}

std::string load_error(const std::filesystem::path& dir) {
  try {
    Engine e(dir);
  } catch (const std::exception& ex) {
    return ex.what();
  }
  return "";
}
}  // namespace

TEST(Engine, BrokenCheckpointsAreRefusedNamingTheTensor) {
  const auto& dir = test_model("tiny", true);
  const std::string t = "model.layers.1.self_attn.kv_b_proj.weight";
  EXPECT_NE(load_error(rewrite(dir, t)).find("'" + t + "'"), std::string::npos);
  EXPECT_NE(load_error(rewrite(dir, "model.layers.2.mlp.experts.3.down_proj.weight_scale_inv")).find("weight_scale_inv"),
            std::string::npos);
  const std::string msg = load_error(rewrite(dir, "", "model.layers.0.mlp.up_proj.weight"));
  EXPECT_NE(msg.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
  // A config that disagrees with the tensors.
  const auto bad = temp_dir("badcfg");
  for (const auto& f : std::filesystem::directory_iterator(dir)) std::filesystem::copy(f.path(), bad / f.path().filename());
  auto j = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  j["kv_lora_rank"] = 48;
  std::ofstream(bad / "config.json") << j.dump();
  EXPECT_NE(load_error(bad).find("expected shape"), std::string::npos);
}

TEST(Engine, ResidentMemoryOfAnExpertSubsetIsProportional) {
  if (resident_file_bytes() == 0) GTEST_SKIP() << "no /proc/self/status RssFile";
  MakeModelOptions o;
  o.preset = "small";
  o.layers = 2;
  const auto dir = temp_dir("rss");
  const ModelConfig cfg = make_model(o, dir);
  auto touched = [&](int n) {
    Checkpoint ck(dir);
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(i * 2);
    const size_t before = resident_file_bytes();
    ExpertSet set(cfg, ck, 1, ids);
    // Route every token to every held expert so all their weights are read.
    Routing r;
    r.tokens = 1;
    r.top_k = n;
    r.experts = ids;
    r.weights.assign(n, 1.0f / n);
    std::vector<float> x(cfg.hidden_size, 0.5f), y(cfg.hidden_size, 0.0f);
    set.forward(x.data(), r, y.data());
    return std::pair<double, double>(double(resident_file_bytes() - before), double(set.weight_bytes()));
  };
  const auto [r8, w8] = touched(8);
  const auto [r32, w32] = touched(32);
  EXPECT_GT(r8, 0.8 * w8);
  EXPECT_LT(r8, 1.3 * w8 + (1 << 20));
  EXPECT_GT(r32, 0.8 * w32);
  EXPECT_LT(r32, 1.3 * w32 + (1 << 20));
  EXPECT_NEAR(r32 / r8, 4.0, 1.0);
}

TEST(Engine, SpeculativeGreedyEqualsPlainGreedy) {
  Engine e(test_model("tiny"));
  const int64_t V = e.config().vocab_size;
  for (int k : {1, 2, 3}) {
    for (uint64_t p = 0; p < 3; ++p) {
      const auto prompt = random_tokens(4 + 3 * p, V, 100 + p);
      const auto plain = greedy_generate(e, 1, prompt, 14);
      e.release(1);
      SpeculationStats st;
      const auto spec = speculative_greedy(e, 2, prompt, 14, k, &st);
      EXPECT_EQ(spec, plain) << "k=" << k << " prompt " << p;
      EXPECT_EQ(e.length(2), static_cast<int64_t>(prompt.size() + 13)) << "main cache rolled back to the output";
      EXPECT_LE(e.mtp_length(2), e.length(2));
      e.release(2);
      EXPECT_GT(st.steps, 0);
      for (int i = 1; i < k; ++i) EXPECT_LE(st.accepted[i], st.accepted[i - 1]);
    }
  }
  EXPECT_EQ(e.cache().used_pages(), 0);
}

TEST(Engine, SpeculativeSamplingIsSeededAndRollsBack) {
  Engine e(test_model("tiny"));
  const int64_t V = e.config().vocab_size;
  const auto prompt = random_tokens(6, V, 300);
  const cpu::SamplingParams sp{0.8f, 40, 0.95f, 5};
  SpeculationStats st;
  const auto a = speculative_generate(e, 1, prompt, 20, 2, sp, &st);
  EXPECT_EQ(e.length(1), static_cast<int64_t>(prompt.size() + 19));
  e.release(1);
  const auto b = speculative_generate(e, 2, prompt, 20, 2, sp);
  e.release(2);
  EXPECT_EQ(a, b) << "same seed, same output";
  ASSERT_EQ(a.size(), 20u);
  for (int32_t t : a) EXPECT_TRUE(t >= 0 && t < V);
  EXPECT_GT(st.drafted[0], 0);
  EXPECT_EQ(e.cache().used_pages(), 0);
}
