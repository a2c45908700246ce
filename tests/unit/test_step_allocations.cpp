// After warm-up, a decode step allocates nothing (every allocation in this binary
// is counted); the step profile's classes add up to the step's time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>

#include "kernels/cpu/thread_pool.h"
#include "model/engine.h"
#include "tests/support/test_models.h"

#include <execinfo.h>
#include <unistd.h>
// The replacements below pair malloc with free on purpose.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<int64_t> g_allocations{0};
std::atomic<bool> g_trace{false};
thread_local bool t_in = false;
void trace() {
  if (!g_trace.load() || t_in) return;
  t_in = true;
  void* b[20]; int n = backtrace(b, 20); backtrace_symbols_fd(b, n, 2); write(2, "----\n", 5);
  t_in = false;
}
}  // namespace

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  trace();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t a) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t al = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
// The nothrow forms too: the library's own would pair with the deletes below.
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t al = static_cast<size_t>(a);
  return std::aligned_alloc(al, (n + al - 1) / al * al);
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept { return operator new(n, a, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

using namespace moemesh;
using namespace moemesh::testing;

namespace {
// Greedy next tokens of every input, in place.
void next_tokens(const StepOutput& o, std::vector<StepInput>& in, int64_t V) {
  for (size_t s = 0; s < in.size(); ++s) {
    const float* l = o.last_logits(s, V);
    in[s].tokens.resize(1);
    in[s].tokens[0] = static_cast<int32_t>(std::max_element(l, l + V) - l);
  }
}
}  // namespace

class StepAllocations : public ::testing::TestWithParam<int> {};

TEST_P(StepAllocations, DecodeStepsAllocateNothingAfterWarmUp) {
  cpu::set_num_threads(GetParam());
  for (bool fp8 : {false, true}) {
    Engine e(test_model("tiny", fp8));
    const int64_t V = e.config().vocab_size;
    std::vector<StepInput> in{{1, random_tokens(20, V, 1), false}, {2, random_tokens(9, V, 2), false},
                              {3, random_tokens(33, V, 3), false}};
    StepOutput o;
    e.step(in, o);  // prefill
    for (int d = 0; d < 4; ++d) {  // warm-up decode steps
      next_tokens(o, in, V);
      e.step(in, o);
    }
    next_tokens(o, in, V);
    const int64_t before = g_allocations.load();
    g_trace = true;
    for (int d = 0; d < 40; ++d) {  // crosses page boundaries (64 tokens a page) for sequence 3
      e.step(in, o);
      for (size_t s = 0; s < in.size(); ++s) {
        const float* l = o.last_logits(s, V);
        in[s].tokens[0] = static_cast<int32_t>(std::max_element(l, l + V) - l);
      }
    }
    g_trace = false;
    EXPECT_EQ(g_allocations.load() - before, 0) << (fp8 ? "fp8" : "bf16") << " weights";
    EXPECT_EQ(e.length(3), 33 + 4 + 40);
  }
  cpu::set_num_threads(2);
}

INSTANTIATE_TEST_SUITE_P(Threads, StepAllocations, ::testing::Values(1, 2));

TEST(StepProfile, ClassesAddUpToTheStepTime) {
  Engine e(test_model("tiny"));
  const int64_t V = e.config().vocab_size;
  std::vector<StepInput> in{{1, random_tokens(50, V, 4), false}, {2, random_tokens(30, V, 5), false}};
  StepOutput o;
  e.step(in, o);
  next_tokens(o, in, V);
  StepProfile p;
  e.set_profile(&p);
  const auto t0 = std::chrono::steady_clock::now();
  for (int d = 0; d < 30; ++d) {
    e.step(in, o);
    next_tokens(o, in, V);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  e.set_profile(nullptr);
  // The greedy picks between steps are the only work outside the step.
  EXPECT_GT(p.total(), 0.90 * wall);
  EXPECT_LE(p.total(), 1.001 * wall);
  EXPECT_GT(p.seconds(OpClass::AttentionProjections), 0.0);
  EXPECT_GT(p.seconds(OpClass::MlaCore), 0.0);
  EXPECT_GT(p.seconds(OpClass::Gate), 0.0);
  EXPECT_GT(p.seconds(OpClass::RoutedExperts), 0.0);
  EXPECT_GT(p.seconds(OpClass::SharedExperts), 0.0);
  EXPECT_GT(p.seconds(OpClass::DenseFfn), 0.0);
  EXPECT_GT(p.seconds(OpClass::LmHead), 0.0);
  for (int c = 0; c < static_cast<int>(OpClass::kCount); ++c) EXPECT_GE(p.seconds(static_cast<OpClass>(c)), 0.0);
  std::printf("profile: %.3f ms of %.3f ms wall\n", 1e3 * p.total(), 1e3 * wall);
}
