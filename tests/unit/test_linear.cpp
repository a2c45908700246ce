// linear(), linear_rows() and linear_t() over every weight dtype against the
// plain loop, in every kernel table this CPU runs (portable, AVX2, AVX2 with the
// bf16 dot product emulated, AVX-512), both precisions, 1 and 2 threads; the
// compute thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>
#include <thread>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/linear_t.h"
#include "kernels/cpu/thread_pool.h"
#include "tests/support/random_weight.h"

using namespace moemesh;
using moemesh::testing::OwnedWeight;

namespace {

// fp8 block scales up to 2^max_scale_exp2 (large ones take the packers' unfolded path).
OwnedWeight make_weight(DType t, int64_t out, int64_t in, uint64_t seed, float max_scale_exp2 = -4) {
  OwnedWeight w = moemesh::testing::random_weight(t, out, in, seed, max_scale_exp2);
  if (t == DType::F8_E4M3) {
    // Every finite e4m3 byte (zeros, subnormals, both signs, the largest) somewhere in the matrix.
    int64_t at = 0;
    for (int b = 0; b < 256; ++b)
      if ((b & 0x7f) != 0x7f) w.data[static_cast<size_t>((at++ * 7919) % (out * in))] = static_cast<uint8_t>(b);
  }
  return w;
}

std::vector<float> activations(int64_t m, int64_t ld, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(m * ld);
  for (auto& v : x) v = nd(rng);
  // A few tiny and large activations: no product may underflow or overflow on the way.
  x[0] = 1e-30f;
  if (x.size() > 3) x[3] = 3e4f;
  return x;
}

std::vector<const cpu::detail::LinearKernels*> tables() {
  std::vector<const cpu::detail::LinearKernels*> t{&cpu::detail::generic_kernels()};
  const auto& f = cpu::cpu_features();
  if (f.avx2) {
    t.push_back(&cpu::detail::avx2_kernels());
    t.push_back(&cpu::detail::avx2_bf16_emulated_kernels());
  }
  if (f.avx512) t.push_back(&cpu::detail::avx512_kernels());
  return t;
}

// Bound on f32 accumulation error: a few ulps of Σ|x||w| per output.
void expect_matches(const std::vector<float>& y, int64_t ldy, const std::vector<float>& ref, int64_t ldr,
                    const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t r0, int64_t r1, double rel,
                    const std::string& what) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = r0; o < r1; ++o) {
      double mag = 0;
      for (int64_t k = 0; k < w.in(); ++k) mag += std::fabs(x[i * ldx + k] * w.at(o, k));
      const float got = y[i * ldy + (o - r0)], want = ref[i * ldr + o];
      ASSERT_TRUE(std::isfinite(got)) << what << " m=" << i << " o=" << o;
      ASSERT_LE(std::fabs(got - want), rel * mag + 1e-30) << what << " m=" << i << " o=" << o << " got " << got
                                                         << " want " << want;
    }
}

struct MatShape {
  int64_t out, in;
};

}  // namespace

class LinearTest : public ::testing::TestWithParam<DType> {};

TEST_P(LinearTest, EveryKernelTableMatchesTheReference) {
  const DType t = GetParam();
  // Partial 128-blocks on both axes, K not a multiple of any chunk; a K of exact
  // chunks; the MLA-like short rows.
  for (const MatShape s : {MatShape{300, 200}, MatShape{136, 512}, MatShape{70, 72}}) {
    OwnedWeight w = make_weight(t, s.out, s.in, 7 + s.in, s.in == 512 ? 9.0f : -4.0f);
    for (int64_t m : {1, 2, 3, 4, 5, 7, 13, 33}) {
      const int64_t ldx = s.in + 5;
      auto x = activations(m, ldx, 100 + m);
      std::vector<float> ref(m * s.out), ref_b(m * s.out);
      cpu::linear_reference(x.data(), m, ldx, w.lw, ref.data(), s.out);
      // What the fast path computes: the activations rounded to bf16.
      std::vector<float> xb(x);
      for (auto& v : xb) v = round_to_bf16(v);
      cpu::linear_reference(xb.data(), m, ldx, w.lw, ref_b.data(), s.out);
      for (const auto* k : tables())
        for (int threads : {1, 2})
          for (cpu::Precision p : {cpu::Precision::Exact, cpu::Precision::Fast}) {
            cpu::set_num_threads(threads);
            const bool rounded = p == cpu::Precision::Fast && k->packed_bf16 && m > cpu::detail::kDirectMaxRows &&
                                 (t == DType::BF16 || t == DType::F8_E4M3);
            const std::string what = std::string(k->name) + " " + cpu::precision_name(p) + " threads=" +
                                     std::to_string(threads) + " " + std::to_string(s.out) + "x" +
                                     std::to_string(s.in) + " m=" + std::to_string(m);
            const int64_t ldy = s.out + 3;
            std::vector<float> y(m * ldy, NAN);
            cpu::detail::linear_rows_with(*k, x.data(), m, ldx, w.lw, 0, s.out, y.data(), ldy, p);
            expect_matches(y, ldy, rounded ? ref_b : ref, s.out, rounded ? xb.data() : x.data(), m, ldx, w.lw, 0,
                           s.out, 1e-5, what);
            // A sub-range of rows starting off every tile and panel boundary.
            const int64_t r0 = std::min<int64_t>(37, s.out / 3), r1 = s.out - 5;
            std::vector<float> yr(m * (r1 - r0), NAN);
            cpu::detail::linear_rows_with(*k, x.data(), m, ldx, w.lw, r0, r1, yr.data(), r1 - r0, p);
            expect_matches(yr, r1 - r0, rounded ? ref_b : ref, s.out, rounded ? xb.data() : x.data(), m, ldx, w.lw,
                           r0, r1, 1e-5, what + " rows");
          }
      // The public entry points take whatever this CPU runs.
      std::vector<float> y(m * s.out, NAN);
      cpu::linear(x.data(), m, ldx, w.lw, y.data(), s.out);
      expect_matches(y, s.out, ref, s.out, x.data(), m, ldx, w.lw, 0, s.out, 1e-5, "linear");
    }
  }
  cpu::set_num_threads(2);
}

TEST_P(LinearTest, TransposedMatchesThePlainLoop) {
  const DType t = GetParam();
  for (const MatShape s : {MatShape{60, 200}, MatShape{200, 512}, MatShape{33, 72}}) {
    OwnedWeight w = make_weight(t, s.out, s.in, 11 + s.out);
    for (int64_t m : {1, 2, 5}) {
      const int64_t r0 = 3, r1 = s.out - 4, n = r1 - r0, ldx = n + 2;
      auto x = activations(m, ldx, 7 + m);
      std::vector<double> ref(m * s.in, 0.0);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t o = r0; o < r1; ++o)
          for (int64_t k = 0; k < s.in; ++k) ref[i * s.in + k] += double(x[i * ldx + o - r0]) * w.lw.at(o, k);
      for (const auto* k : tables()) {
        const int64_t ldy = s.in + 1;
        std::vector<float> y(m * ldy, NAN);
        k->transposed(x.data(), m, ldx, w.lw, r0, r1, y.data(), ldy, s.in);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t c = 0; c < s.in; ++c) {
            double mag = 0;
            for (int64_t o = r0; o < r1; ++o) mag += std::fabs(x[i * ldx + o - r0] * w.lw.at(o, c));
            ASSERT_NEAR(y[i * ldy + c], ref[i * s.in + c], 1e-5 * mag + 1e-30)
                << k->name << " " << s.out << "x" << s.in << " m=" << m << " i=" << i << " col " << c;
          }
        // The leading columns only (a latent page without its rope columns): the
        // same values there, and nothing written past them.
        for (const int64_t cols : {s.in - 8, s.in / 2 + 3}) {
          std::vector<float> yc(m * ldy, NAN);
          k->transposed(x.data(), m, ldx, w.lw, r0, r1, yc.data(), ldy, cols);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t c = 0; c < ldy; ++c) {
              if (c >= cols) {
                ASSERT_TRUE(std::isnan(yc[i * ldy + c])) << k->name << " wrote column " << c << " of " << cols;
                continue;
              }
              double mag = 0;
              for (int64_t o = r0; o < r1; ++o) mag += std::fabs(x[i * ldx + o - r0] * w.lw.at(o, c));
              ASSERT_NEAR(yc[i * ldy + c], ref[i * s.in + c], 1e-5 * mag + 1e-30)
                  << k->name << " " << cols << " of " << s.in << " columns, m=" << m << " i=" << i << " col " << c;
            }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LinearTest, ::testing::Values(DType::F32, DType::BF16, DType::F16, DType::F8_E4M3),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Linear, RefusesWhatItCannotCompute) {
  OwnedWeight w = make_weight(DType::F8_E4M3, 16, 16, 1);
  w.lw.scale_inv = nullptr;
  std::vector<float> x(16, 1.0f), y(16);
  EXPECT_THROW(cpu::linear(x.data(), 1, w.lw, y.data()), std::invalid_argument);
  OwnedWeight i = make_weight(DType::BF16, 16, 16, 1);
  i.lw.w.dtype = DType::I16;
  EXPECT_THROW(cpu::linear(x.data(), 1, i.lw, y.data()), std::invalid_argument);
}

TEST(CpuFeatures, TheChosenKernelsAreSupported) {
  const auto& f = cpu::cpu_features();
  const cpu::KernelIsa isa = cpu::kernel_isa();
  if (isa == cpu::KernelIsa::Avx512) { EXPECT_TRUE(f.avx512); }
  if (isa == cpu::KernelIsa::Avx2) { EXPECT_TRUE(f.avx2); }
  if (f.avx512) { EXPECT_TRUE(f.avx2); }
  if (cpu::kernels_have_bf16_dot() && !cpu::kernels_emulate_bf16_dot()) { EXPECT_TRUE(f.avx512_bf16); }
  EXPECT_FALSE(cpu::kernel_description().empty());
  std::printf("kernels: %s\n", cpu::kernel_description().c_str());
}

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

TEST(ThreadPool, RunsOnEveryThreadOnce) {
  for (int threads : {1, 2, 3}) {
    cpu::set_num_threads(threads);
    std::vector<std::atomic<int>> seen(threads);
    std::atomic<int> calls{0};
    cpu::run_on_every_thread([&](int64_t b, int64_t e) {
      EXPECT_EQ(e, b + 1);
      ++calls;
      ++seen[cpu::current_thread_index()];
    });
    EXPECT_EQ(calls.load(), threads);
    for (int i = 0; i < threads; ++i) EXPECT_EQ(seen[i].load(), 1) << "thread " << i << " of " << threads;
  }
  cpu::set_num_threads(2);
}

TEST(ThreadPool, WorkersThatWentToSleepWakeForTheNextLoop) {
  cpu::set_num_threads(2);
  const cpu::PoolWaitPolicy before = cpu::pool_wait_policy();
  cpu::set_pool_wait_policy({0, 0});  // straight to sleep
  for (int round = 0; round < 50; ++round) {
    std::atomic<int64_t> total{0};
    cpu::parallel_for(64, 1, [&](int64_t b, int64_t e) { total += e - b; });
    ASSERT_EQ(total.load(), 64);
    if (round % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  cpu::set_pool_wait_policy(before);
}
