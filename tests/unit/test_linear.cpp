// linear() over every weight dtype against the plain loop, in the portable and
// the AVX-512 paths; the compute thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/thread_pool.h"
#include "tests/support/random_weight.h"

using namespace moemesh;

namespace {

using moemesh::testing::OwnedWeight;
OwnedWeight make_weight(DType t, int64_t out, int64_t in, uint64_t seed) { return moemesh::testing::random_weight(t, out, in, seed, -4); }

std::vector<float> activations(int64_t m, int64_t ld, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(m * ld);
  for (auto& v : x) v = nd(rng);
  return x;
}

// Bound on f32 accumulation error: a few ulps of Σ|x||w| per output.
void expect_matches(const std::vector<float>& y, const std::vector<float>& ref, const float* x, int64_t m, int64_t ldx,
                    const LinearWeight& w, int64_t r0, int64_t r1, int64_t ldy, const std::string& what) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = r0; o < r1; ++o) {
      double mag = 0;
      for (int64_t k = 0; k < w.in(); ++k) mag += std::fabs(x[i * ldx + k] * w.at(o, k));
      const float got = y[i * ldy + (o - r0)], want = ref[i * w.out() + o];
      ASSERT_LE(std::fabs(got - want), 1e-5 * mag + 1e-30) << what << " m=" << i << " o=" << o;
    }
}

}  // namespace

class LinearTest : public ::testing::TestWithParam<DType> {};

TEST_P(LinearTest, MatchesReferenceInEveryPath) {
  const DType t = GetParam();
  const int64_t out = 300, in = 200;  // partial 128-blocks on both axes
  OwnedWeight w = make_weight(t, out, in, 7);
  for (int64_t m : {1, 3, 8, 33, 130}) {
    const int64_t ldx = in + 5;
    auto x = activations(m, ldx, 100 + m);
    std::vector<float> ref(m * out);
    cpu::linear_reference(x.data(), m, ldx, w.lw, ref.data(), out);
    // Public entry point (whatever path this CPU takes), with a wide output stride.
    const int64_t ldy = out + 3;
    std::vector<float> y(m * ldy, NAN);
    cpu::linear(x.data(), m, ldx, w.lw, y.data(), ldy);
    expect_matches(y, ref, x.data(), m, ldx, w.lw, 0, out, ldy, "linear");
    // Sub-range of rows.
    std::vector<float> yr(m * 100, NAN);
    cpu::linear_rows(x.data(), m, ldx, w.lw, 150, 250, yr.data(), 100);
    expect_matches(yr, ref, x.data(), m, ldx, w.lw, 150, 250, 100, "linear_rows");
    // Each building block, portable and (where the CPU has it) AVX-512.
    for (bool avx : {false, true}) {
      if (avx && !cpu::detail::cpu_has_avx512()) continue;
      std::vector<float> panel(8 * in), yp(m * 8);
      for (int64_t o0 = 0; o0 < out; o0 += 8) {
        const int64_t o1 = std::min<int64_t>(out, o0 + 8);
        if (avx) cpu::detail::convert_rows_avx512(w.lw, o0, o1, panel.data());
        else cpu::detail::convert_rows_generic(w.lw, o0, o1, panel.data());
        for (int64_t o = o0; o < o1; ++o)
          for (int64_t k = 0; k < in; ++k) ASSERT_EQ(panel[(o - o0) * in + k], w.lw.at(o, k)) << "conversion exact";
        if (avx) cpu::detail::panel_product_avx512(x.data(), m, ldx, panel.data(), o1 - o0, in, yp.data(), 8);
        else cpu::detail::panel_product_generic(x.data(), m, ldx, panel.data(), o1 - o0, in, yp.data(), 8);
        expect_matches(yp, ref, x.data(), m, ldx, w.lw, o0, o1, 8, avx ? "avx512" : "generic");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LinearTest, ::testing::Values(DType::F32, DType::BF16, DType::F16, DType::F8_E4M3),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    cpu::set_num_threads(threads);
    EXPECT_EQ(cpu::num_threads(), threads);
    for (int64_t n : {0, 1, 7, 64, 1000, 100003})
      for (int64_t grain : {1, 3, 64, 5000}) {
        std::vector<std::atomic<int>> hits(n);
        cpu::parallel_for(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[i]++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << "/" << grain << " at " << i;
      }
  }
  cpu::set_num_threads(2);
}

TEST(ThreadPool, ExceptionsPropagateAndNestedLoopsRun) {
  cpu::set_num_threads(2);
  EXPECT_THROW(cpu::parallel_for(1000, 1, [](int64_t b, int64_t) {
                 if (b > 500) throw std::runtime_error("boom");
               }),
               std::runtime_error);
  std::atomic<int64_t> total{0};
  cpu::parallel_for(10, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      cpu::parallel_for(100, 1, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
  });
  EXPECT_EQ(total.load(), 1000);
}
