// The compute thread pool: a fixed set of workers that run parallel_for loops.
// Compute never runs on actor or I/O threads; they hand work to this pool.
#pragma once

#include <cstdint>
#include <type_traits>

namespace moemesh::cpu {

// Number of compute threads (default: hardware concurrency; MOEMESH_THREADS overrides).
int num_threads();
// Resizes the pool; safe only when no parallel_for is running.
void set_num_threads(int n);

// A non-owning reference to a callable fn(begin, end): passing a lambda to
// parallel_for allocates nothing (std::function would, for larger captures).
class RangeFn {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, RangeFn>>>
  RangeFn(const F& f)  // NOLINT: implicit, so that lambdas pass straight in
      : obj_(&f), call_([](const void* o, int64_t b, int64_t e) { (*static_cast<const F*>(o))(b, e); }) {}
  void operator()(int64_t b, int64_t e) const { call_(obj_, b, e); }

 private:
  const void* obj_;
  void (*call_)(const void*, int64_t, int64_t);
};

// Calls fn(begin, end) on disjoint chunks covering [0, n), with chunks of at least
// `grain` items, spread over the pool; returns when all are done. Nested calls run
// serially on the calling thread.
void parallel_for(int64_t n, int64_t grain, RangeFn fn);

// Runs fn(i, i + 1) once on every thread of the pool (the caller included), i the
// thread's index; returns when all have. For per-thread setup such as scratch memory.
void run_on_every_thread(RangeFn fn);

// 0 on threads outside the pool's workers (the caller of parallel_for), 1..n-1 on
// the workers: an index for per-thread scratch.
int current_thread_index();

// How idle workers wait for the next loop: they spin for `spin_us`, then yield the
// core to any other runnable thread (another role sharing the machine) until
// `yield_us`, then sleep. MOEMESH_POOL_SPIN_US / MOEMESH_POOL_YIELD_US override.
struct PoolWaitPolicy {
  int spin_us = 50;
  int yield_us = 2000;
};
PoolWaitPolicy pool_wait_policy();
void set_pool_wait_policy(const PoolWaitPolicy& p);

}  // namespace moemesh::cpu
