// The engine against a plain reference forward, and its equivalences across paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>

#include "core/safetensors.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/sampling.h"
#include "model/checkpoint_maker.h"
#include "model/engine.h"
#include "model/eval.h"
#include "model/experts.h"
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

// The options of the equivalence tests: f32 products and an f32 latent cache, so
// two paths differ only by f32 summation order (a bf16 cache turns a last-bit
// difference into a whole bf16 step when a latent sits on a rounding boundary).
EngineOptions exact_f32() {
  EngineOptions o;
  o.compute = cpu::Precision::Exact;
  o.kv_dtype = KvCacheDtype::F32;
  return o;
}

// Per position: the softmax KL divergence (ref ‖ got) and the logits' standard deviation.
double kl_divergence(const std::vector<float>& ref, const std::vector<float>& got) {
  const double mr = *std::max_element(ref.begin(), ref.end()), mg = *std::max_element(got.begin(), got.end());
  double zr = 0, zg = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    zr += std::exp(ref[i] - mr);
    zg += std::exp(got[i] - mg);
  }
  double kl = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double lp = ref[i] - mr - std::log(zr), lq = got[i] - mg - std::log(zg);
    kl += std::exp(lp) * (lp - lq);
  }
  return kl;
}
double stddev(const std::vector<float>& v) {
  double m = 0, s = 0;
  for (float x : v) m += x;
  m /= v.size();
  for (float x : v) s += (x - m) * (x - m);
  return std::sqrt(s / v.size());
}

// The profile of bf16 arithmetic (`--compute fast` on CPUs with bf16 dot products,
// an fp8 latent cache), calibrated on DeepSeek-V3's reference run in bf16 against
// its own f32 run (docs/EVAL.md: median |diff| 0.04 of the logits' std, every
// top-1 disagreement a near-tie, max 0.84 std): median |diff| ≤ 0.05 std and the
// same top-1 wherever the reference's top two lie further apart than the
// position's max |diff|. The max alone is the noisiest figure (one logit of one
// position of a random model); it is bounded by `max_std`.
void expect_bf16_profile(const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& ref,
                         const std::string& what, double max_std = 1.0) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  std::vector<double> diffs;
  double sd_sum = 0, worst = 0;
  int agree = 0, ties = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double sd = stddev(ref[i]);
    sd_sum += sd;
    double md = 0;
    for (size_t j = 0; j < ref[i].size(); ++j) {
      const double d = std::fabs(got[i][j] - ref[i][j]);
      diffs.push_back(d);
      md = std::max(md, d);
    }
    worst = std::max(worst, md / sd);
    EXPECT_LE(md, max_std * sd) << what << " position " << i;
    std::vector<float> r = ref[i];
    const int64_t n = static_cast<int64_t>(r.size());
    const int64_t top = cpu::argmax(r.data(), n);
    std::nth_element(r.begin(), r.begin() + 1, r.end(), std::greater<float>());
    const bool same = cpu::argmax(got[i].data(), n) == top;
    agree += same;
    if (r[0] - r[1] > md) EXPECT_TRUE(same) << what << " position " << i;
    else ties += !same;
  }
  std::nth_element(diffs.begin(), diffs.begin() + diffs.size() / 2, diffs.end());
  const double median = diffs[diffs.size() / 2], sd = sd_sum / ref.size();
  std::printf("%s: median |diff| %.3g (%.3g std), max %.3g std, top-1 %d/%zu (%d near-ties differ)\n", what.c_str(),
              median, median / sd, worst, agree, ref.size(), ties);
  EXPECT_LE(median, 0.05 * sd) << what;
}

}  // namespace

struct ReferenceCase {
  std::string preset;
  bool fp8;
  cpu::Precision compute;
};

class EngineVsReference : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(EngineVsReference, LogitsAndMtpLogitsMatch) {
  const auto& [preset, fp8, compute] = GetParam();
  const auto& dir = test_model(preset, fp8);
  EngineOptions o;
  o.compute = compute;
  Engine e(dir, o);
  const auto tokens = random_tokens(12, e.config().vocab_size, 5);
  const ReferenceOutput ref = reference_forward(dir, tokens);
  EvalRequest req;
  req.sequences = {tokens};
  const auto out = run_eval(e, req);
  const auto logits = out["sequences"][0]["logits"].get<std::vector<std::vector<float>>>();
  const bool rounded = compute == cpu::Precision::Fast && cpu::kernels_have_bf16_dot();
  const std::string what = preset + (fp8 ? " fp8 " : " ") + cpu::precision_name(compute);
  if (rounded) expect_bf16_profile(logits, ref.logits, what + " logits");
  else expect_close(logits, ref.logits, 2e-4, what + " logits");
  if (e.has_mtp()) {
    const auto mtp = out["sequences"][0]["mtp_logits"].get<std::vector<std::vector<float>>>();
    if (rounded) expect_bf16_profile(mtp, ref.mtp_logits, what + " mtp logits");
    else expect_close(mtp, ref.mtp_logits, 2e-4, what + " mtp logits");
  }
  EXPECT_EQ(e.cache().used_pages(), 0) << "eval releases its sequences";
}

INSTANTIATE_TEST_SUITE_P(Presets, EngineVsReference,
                         ::testing::Values(ReferenceCase{"tiny", false, cpu::Precision::Exact},
                                           ReferenceCase{"tiny", true, cpu::Precision::Exact},
                                           ReferenceCase{"tiny-nolora", false, cpu::Precision::Exact},
                                           ReferenceCase{"tiny-v2", false, cpu::Precision::Exact},
                                           ReferenceCase{"tiny", false, cpu::Precision::Fast},
                                           ReferenceCase{"tiny", true, cpu::Precision::Fast},
                                           ReferenceCase{"tiny-nolora", false, cpu::Precision::Fast},
                                           ReferenceCase{"tiny-v2", false, cpu::Precision::Fast}),
                         [](const auto& info) {
                           std::string n = info.param.preset + (info.param.fp8 ? "_fp8_" : "_") +
                                           cpu::precision_name(info.param.compute);
                           for (auto& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

// With an f32 latent cache and exact products the engine is the plain double
// forward up to f32 rounding: within 1e-3 of each position's logit spread, KL
// ≤ 1e-5, and greedy decoding picks the reference's top token at every step.
class EngineStrict : public ::testing::TestWithParam<std::pair<std::string, bool>> {};

TEST_P(EngineStrict, F32CacheAndExactProductsMatchTheDoubleForward) {
  const auto& [preset, fp8] = GetParam();
  const auto& dir = test_model(preset, fp8);
  Engine e(dir, exact_f32());
  const int64_t V = e.config().vocab_size;
  const auto prompt = random_tokens(7, V, 17);
  std::vector<int32_t> seq = prompt;
  const auto gen = greedy_generate(e, 1, prompt, 12);
  e.release(1);
  seq.insert(seq.end(), gen.begin(), gen.end());
  const ReferenceOutput ref = reference_forward(dir, seq, LatentRounding::None);
  const auto got = prefill_logits(e, 2, seq);
  double worst = 0, worst_kl = 0;
  for (size_t i = 0; i < seq.size(); ++i) {
    const double sd = stddev(ref.logits[i]);
    double md = 0;
    for (size_t j = 0; j < ref.logits[i].size(); ++j) md = std::max<double>(md, std::fabs(got[i][j] - ref.logits[i][j]));
    worst = std::max(worst, md / sd);
    const double kl = kl_divergence(ref.logits[i], got[i]);
    worst_kl = std::max(worst_kl, kl);
    EXPECT_LE(md, 1e-3 * sd) << preset << " position " << i;
    EXPECT_LE(kl, 1e-5) << preset << " position " << i;
    if (i + 1 >= prompt.size() && i + 1 < seq.size())
      EXPECT_EQ(cpu::argmax(ref.logits[i].data(), V), seq[i + 1]) << preset << ": greedy step " << i + 1 - prompt.size();
  }
  std::printf("%s%s: max |diff| %.2g x logit std, max KL %.2g\n", preset.c_str(), fp8 ? " fp8" : "", worst, worst_kl);
}

INSTANTIATE_TEST_SUITE_P(Presets, EngineStrict,
                         ::testing::Values(std::pair<std::string, bool>{"tiny", false},
                                           std::pair<std::string, bool>{"tiny", true},
                                           std::pair<std::string, bool>{"tiny-nolora", false},
                                           std::pair<std::string, bool>{"tiny-v2", false}));

// An fp8 latent cache (half of bf16's memory) is exactly the reference with e4m3
// latents, and stays within the bf16 profile of the unrounded reference. Its
// largest single deviation on these random models reaches 2.3 std (3 bits of
// mantissa on every cached latent), hence the wider max bound.
TEST(Engine, Fp8LatentCachePassesTheBf16Profile) {
  for (bool fp8 : {false, true}) {
    const auto& dir = test_model("tiny", fp8);
    EngineOptions o;
    o.kv_dtype = KvCacheDtype::FP8;
    o.compute = cpu::Precision::Exact;
    Engine e(dir, o);
    const auto tokens = random_tokens(30, e.config().vocab_size, 77);
    const ReferenceOutput ref = reference_forward(dir, tokens, LatentRounding::None);
    const ReferenceOutput ref8 = reference_forward(dir, tokens, LatentRounding::Fp8);
    expect_close(prefill_logits(e, 4, tokens), ref8.logits, 2e-4, "fp8 cache vs the reference's fp8 latents");
    expect_bf16_profile(prefill_logits(e, 1, tokens), ref.logits, std::string("fp8 cache") + (fp8 ? " fp8 weights" : ""),
                        3.0);
    // Decode reads the cache back too.
    std::vector<std::vector<float>> inc;
    const int64_t V = e.config().vocab_size;
    StepOutput s = e.step({{3, std::vector<int32_t>(tokens.begin(), tokens.begin() + 10), true}});
    for (int r = 0; r < 10; ++r) inc.emplace_back(s.logits.begin() + r * V, s.logits.begin() + (r + 1) * V);
    for (size_t i = 10; i < tokens.size(); ++i) {
      s = e.step({{3, {tokens[i]}, false}});
      inc.emplace_back(s.logits.begin(), s.logits.end());
    }
    expect_bf16_profile(inc, ref.logits, "fp8 cache, decode", 3.0);
    e.release(3);
  }
}

TEST(Engine, AbsorbedEqualsNaive) {
  for (const auto& dir : {test_model("tiny"), test_model("tiny", true), trained_model(), trained_model(true)}) {
    EngineOptions naive = exact_f32(), absorbed = exact_f32();
    naive.mla_mode = MlaMode::Naive;
    absorbed.mla_mode = MlaMode::Absorbed;
    Engine a(dir, naive), b(dir, absorbed);
    const auto tokens = random_tokens(40, a.config().vocab_size, 9);
    expect_close(prefill_logits(a, 1, tokens), prefill_logits(b, 1, tokens), 5e-5, "absorbed vs naive");
  }
}

TEST(Engine, CachedDecodeEqualsFullRecompute) {
  for (const auto& dir : {test_model("tiny"), trained_model()}) {
    SCOPED_TRACE(dir.string());
    Engine e(dir, exact_f32());
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
}

TEST(Engine, BatchOfMixedSequencesEqualsEachAlone) {
  const auto& dir = test_model("tiny");
  Engine e(dir, exact_f32());
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
  // A random model and the trained one (real weight distributions, quantized by tools/train in numpy).
  for (const auto& fp8 : {test_model("tiny", true), trained_model(true)}) {
    SCOPED_TRACE(fp8.string());
    const auto f32 = temp_dir("twin-f32"), bf16 = temp_dir("twin-bf16");
    dequantize_checkpoint(fp8, f32, DType::F32);
    dequantize_checkpoint(fp8, bf16, DType::BF16);
    Engine q(fp8, exact_f32()), t32(f32, exact_f32()), t16(bf16, exact_f32());
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
  Engine e(dir, exact_f32());
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

