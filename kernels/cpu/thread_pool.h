// The compute thread pool: a fixed set of workers that run parallel_for loops.
// Compute never runs on actor or I/O threads; they hand work to this pool.
#pragma once

#include <cstdint>
#include <functional>

namespace moemesh::cpu {

// Number of compute threads (default: hardware concurrency; MOEMESH_THREADS overrides).
int num_threads();
// Resizes the pool; safe only when no parallel_for is running.
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint chunks covering [0, n), with chunks of at least
// `grain` items, spread over the pool; returns when all are done. Nested calls run
// serially on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace moemesh::cpu
