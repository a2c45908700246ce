// The committed trained checkpoint against what tools/train's own PyTorch forward
// (an independent implementation) recorded in its reference.json: greedy
// continuations token for token, and held-out perplexity within 1 %.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/sampling.h"
#include "model/engine.h"
#include "model/perplexity.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

nlohmann::json reference(const std::filesystem::path& dir) { return nlohmann::json::parse(std::ifstream(dir / "reference.json")); }

EngineOptions exact_f32() {
  EngineOptions o;
  o.compute = cpu::Precision::Exact;
  o.kv_dtype = KvCacheDtype::F32;
  return o;
}

// Greedy decoding that stops at EOS, as a chat would.
std::vector<int32_t> greedy_until_eos(Engine& e, const std::vector<int32_t>& prompt, size_t max_new) {
  const int64_t V = e.config().vocab_size;
  const auto eos = static_cast<int32_t>(e.config().eos_token_id);
  std::vector<int32_t> out;
  StepOutput s = e.step({{1, prompt, false}});
  while (true) {
    out.push_back(cpu::argmax(s.last_logits(0, V), V));
    if (out.back() == eos || out.size() == max_new) break;
    s = e.step({{1, {out.back()}, false}});
  }
  e.release(1);
  return out;
}

std::vector<float> score_windows(Engine& e, const std::vector<std::vector<int32_t>>& windows) {
  const int64_t V = e.config().vocab_size;
  std::vector<StepInput> in;
  for (size_t i = 0; i < windows.size(); ++i) in.push_back({100 + i, windows[i], true});
  const StepOutput s = e.step(in);
  for (size_t i = 0; i < windows.size(); ++i) e.release(100 + i);
  // One chunk per window, every row with logits, in order.
  EXPECT_EQ(s.logit_rows.size(), windows.size() * windows[0].size());
  return s.logits;
}

std::string read_file(const std::filesystem::path& p) {
  std::stringstream ss;
  ss << std::ifstream(p, std::ios::binary).rdbuf();
  return ss.str();
}

}  // namespace

class TrainedModel : public ::testing::TestWithParam<bool> {};

TEST_P(TrainedModel, GreedyContinuationsEqualThePyTorchForward) {
  const auto dir = trained_model(GetParam());
  const auto ref = reference(dir);
  const auto tok = tok::Tokenizer::load(dir);
  const auto tmpl = tok::ChatTemplate::for_tokenizer(*tok);
  Engine e(dir, exact_f32());
  ASSERT_GE(ref["prompts"].size(), 3u);
  for (const auto& p : ref["prompts"]) {
    const std::string user = p["user"];
    // The serving tokenizer and chat template give the training script's prompt ids.
    const std::string text = tmpl.render(nlohmann::json::array({{{"role", "user"}, {"content", user}}}), true);
    const auto ids = tok->encode(text, /*add_special_tokens=*/false);
    EXPECT_EQ(ids, p["prompt_ids"].get<std::vector<int32_t>>()) << user;
    const auto want = p["tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(greedy_until_eos(e, ids, want.size()), want) << user << " -> " << p["text"].get<std::string>();
  }
}

TEST_P(TrainedModel, HeldOutPerplexityIsWithinOnePercentOfPyTorch) {
  const auto dir = trained_model(GetParam());
  const auto ref = reference(dir)["perplexity"];
  const auto tok = tok::Tokenizer::load(dir);
  const auto tokens = tok->encode(read_file(dir.parent_path() / ref["file"].get<std::string>()), false);
  EXPECT_EQ(static_cast<int64_t>(tokens.size()), ref["tokens"].get<int64_t>()) << "the tokenizers disagree";
  const int64_t ctx = ref["ctx"];
  // As users run it (bf16 cache, fast products) and exact.
  for (const EngineOptions& o : {EngineOptions{}, exact_f32()}) {
    EngineOptions opts = o;
    opts.kv_tokens = 8 * ctx + 256;
    Engine e(dir, opts);
    const PerplexityResult r = perplexity(tokens, ctx, static_cast<int32_t>(e.config().bos_token_id),
                                          e.config().vocab_size, 8, [&](const auto& w) { return score_windows(e, w); });
    EXPECT_EQ(r.scored, ref["scored"].get<int64_t>());
    const double want = ref["ppl"];
    EXPECT_NEAR(r.ppl(), want, 0.01 * want) << "kv " << kv_cache_dtype_name(opts.kv_dtype);
    std::printf("perplexity %.4f (PyTorch %.4f), kv %s\n", r.ppl(), want, kv_cache_dtype_name(opts.kv_dtype));
  }
}

INSTANTIATE_TEST_SUITE_P(Weights, TrainedModel, ::testing::Values(false, true),
                         [](const auto& info) { return std::string(info.param ? "fp8" : "bf16"); });

TEST(Perplexity, WindowsStartWithBosAndScoreTheirSecondHalf) {
  std::vector<int32_t> tokens(23);
  for (int i = 0; i < 23; ++i) tokens[i] = 10 + i;
  const auto w = perplexity_windows(tokens, 8, 0);
  ASSERT_EQ(w.size(), 2u);  // the 7-token tail is dropped
  EXPECT_EQ(w[0], (std::vector<int32_t>{0, 11, 12, 13, 14, 15, 16, 17}));
  EXPECT_EQ(w[1][0], 0);
  EXPECT_EQ(w[1][1], 19);
  // A scorer that puts probability p on the true next token of every row, uniform elsewhere.
  const int64_t V = 64;
  const double p = 0.25;
  const auto r = perplexity(tokens, 8, 0, V, 1, [&](const std::vector<std::vector<int32_t>>& ws) {
    std::vector<float> l(ws.size() * 8 * V, 0.0f);
    for (size_t k = 0; k < ws.size(); ++k)
      for (int i = 0; i + 1 < 8; ++i)
        l[(k * 8 + i) * V + ws[k][i + 1] - 0] = static_cast<float>(std::log(p * (V - 1) / (1 - p)));
    return l;
  });
  EXPECT_EQ(r.windows, 2);
  EXPECT_EQ(r.scored, 2 * 3);  // positions 4, 5, 6 of each window predict 5, 6, 7
  EXPECT_NEAR(r.ppl(), 1 / p, 1e-4);
  EXPECT_THROW(perplexity(std::vector<int32_t>(5, 1), 8, 0, V, 1, {}), std::invalid_argument);
}
