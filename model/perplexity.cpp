#include "model/perplexity.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace moemesh {

double PerplexityResult::ppl() const { return std::exp(nll); }

std::vector<std::vector<int32_t>> perplexity_windows(const std::vector<int32_t>& tokens, int64_t ctx, int32_t bos) {
  std::vector<std::vector<int32_t>> out;
  for (size_t start = 0; start + ctx <= tokens.size(); start += ctx) {
    out.emplace_back(tokens.begin() + start, tokens.begin() + start + ctx);
    out.back()[0] = bos;
  }
  return out;
}

PerplexityResult perplexity(const std::vector<int32_t>& tokens, int64_t ctx, int32_t bos, int64_t vocab,
                            int64_t batch, const WindowScorer& score) {
  if (ctx < 4) throw std::invalid_argument("the window must be at least 4 tokens, found " + std::to_string(ctx));
  const auto windows = perplexity_windows(tokens, ctx, bos);
  if (windows.empty())
    throw std::invalid_argument("the text has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                                std::to_string(ctx));
  PerplexityResult r;
  r.tokens = static_cast<int64_t>(tokens.size());
  r.windows = static_cast<int64_t>(windows.size());
  const int64_t first = ctx / 2;
  double total = 0;  // summed in double: tens of thousands of terms
  batch = std::max<int64_t>(1, batch);
  for (size_t w0 = 0; w0 < windows.size(); w0 += batch) {
    const std::vector<std::vector<int32_t>> part(windows.begin() + w0,
                                                 windows.begin() + std::min(windows.size(), w0 + batch));
    const std::vector<float> logits = score(part);
    if (static_cast<int64_t>(logits.size()) != static_cast<int64_t>(part.size()) * ctx * vocab)
      throw std::runtime_error("perplexity: the scorer returned " + std::to_string(logits.size()) + " logits for " +
                               std::to_string(part.size()) + " windows of " + std::to_string(ctx));
    for (size_t w = 0; w < part.size(); ++w) {
      for (int64_t i = first; i < ctx - 1; ++i) {
        const float* row = logits.data() + (w * ctx + i) * vocab;
        const double mx = *std::max_element(row, row + vocab);
        double sum = 0;
        for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
        total += mx + std::log(sum) - row[part[w][i + 1]];
        ++r.scored;
      }
    }
  }
  r.nll = total / static_cast<double>(r.scored);
  return r;
}

}  // namespace moemesh
