#include "tests/support/chi_square.h"

#include <cmath>

namespace moemesh::testing {

ChiSquare chi_square_two_sample(const std::map<int32_t, double>& a, const std::map<int32_t, double>& b) {
  ChiSquare r;
  std::map<int32_t, std::pair<double, double>> both;
  for (const auto& [t, c] : a) both[t].first = c;
  for (const auto& [t, c] : b) both[t].second = c;
  auto cell = [&](double x, double y) {
    if (x + y == 0) return;
    r.chi2 += (x - y) * (x - y) / (x + y);
    ++r.cells;
  };
  double rest_a = 0, rest_b = 0;
  for (const auto& [t, ab] : both) {
    if (ab.first + ab.second >= 5) cell(ab.first, ab.second);
    else rest_a += ab.first, rest_b += ab.second;
  }
  cell(rest_a, rest_b);
  const double df = r.cells - 1, z = 3.09;
  r.limit = df > 0 ? df * std::pow(1 - 2 / (9 * df) + z * std::sqrt(2 / (9 * df)), 3) : 0;
  return r;
}

}  // namespace moemesh::testing
