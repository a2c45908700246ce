// Two-sample chi-square over token counts: do two samplers draw from the same
// distribution? Tokens seen fewer than 5 times in both samples together are
// pooled into one cell; the limit is the p = 0.001 quantile with cells - 1
// degrees of freedom (Wilson-Hilferty).
#pragma once

#include <cstdint>
#include <map>

namespace moemesh::testing {

struct ChiSquare {
  double chi2 = 0, limit = 0;
  int cells = 0;
};
ChiSquare chi_square_two_sample(const std::map<int32_t, double>& a, const std::map<int32_t, double>& b);

}  // namespace moemesh::testing
