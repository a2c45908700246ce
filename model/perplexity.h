// Perplexity of a text in windows, scored as llama.cpp's llama-perplexity does:
// the token stream is cut into windows of ctx tokens, each window's first token
// is replaced by BOS, and only the second half of each window is scored (every
// scored token has at least ctx/2 tokens of context). The scorer is anything
// that gives a window's logits: the engine in this process, or the mesh.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace moemesh {

struct PerplexityResult {
  int64_t tokens = 0;   // of the whole text
  int64_t windows = 0;
  int64_t scored = 0;   // tokens whose probability entered the result
  double nll = 0;       // mean negative log-likelihood per scored token, nats
  double ppl() const;
};

// The windows of `tokens`: tokens.size() / ctx of them (a partial tail is dropped).
std::vector<std::vector<int32_t>> perplexity_windows(const std::vector<int32_t>& tokens, int64_t ctx, int32_t bos);

// Logits [window.size(), vocab] of each window of a batch, concatenated in order.
using WindowScorer = std::function<std::vector<float>(const std::vector<std::vector<int32_t>>& windows)>;

// Scores every window, `batch` windows per call of the scorer. Throws
// std::invalid_argument when the text is shorter than one window or ctx < 4.
PerplexityResult perplexity(const std::vector<int32_t>& tokens, int64_t ctx, int32_t bos, int64_t vocab,
                            int64_t batch, const WindowScorer& score);

}  // namespace moemesh
