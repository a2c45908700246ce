#include "kernels/cpu/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define MOEMESH_PAUSE() _mm_pause()
#else
#define MOEMESH_PAUSE() ((void)0)
#endif

namespace moemesh::cpu {
namespace {

thread_local bool t_inside_pool = false;
thread_local int t_index = 0;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::max(0, std::atoi(v)) : fallback;
}

std::atomic<int> g_spin_us{env_int("MOEMESH_POOL_SPIN_US", PoolWaitPolicy{}.spin_us)};
std::atomic<int> g_yield_us{env_int("MOEMESH_POOL_YIELD_US", PoolWaitPolicy{}.yield_us)};

using Clock = std::chrono::steady_clock;

// Waits until done() holds: spinning first (decode issues thousands of short loops
// a second, and a wake-up through the kernel costs more than the loop), then
// yielding the core, then giving up (the caller sleeps). True when done.
template <class Done>
bool spin_then_yield(const Done& done) {
  const auto t0 = Clock::now();
  const auto spin_end = t0 + std::chrono::microseconds(g_spin_us.load(std::memory_order_relaxed));
  const auto yield_end = t0 + std::chrono::microseconds(g_yield_us.load(std::memory_order_relaxed));
  for (int i = 0;; ++i) {
    if (done()) return true;
    if ((i & 63) != 0) {
      MOEMESH_PAUSE();
      continue;
    }
    const auto now = Clock::now();
    if (now >= yield_end) return done();
    if (now >= spin_end) sched_yield();
    else MOEMESH_PAUSE();
  }
}

// Workers wait for a job generation number; the caller works too, then waits for
// all chunks. Chunks are claimed from a shared atomic counter.
class Pool {
 public:
  explicit Pool(int n) { start(n); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    start(n);
  }

  // one_each: n == size() chunks of one, each thread taking exactly one.
  void run(int64_t n, int64_t grain, RangeFn fn, bool one_each = false) {
    std::lock_guard<std::mutex> serial(run_mu_);  // one parallel_for at a time
    // Many more chunks than threads: claimed dynamically, they balance uneven work.
    const int64_t chunks_wanted = std::min<int64_t>(size() * 16, (n + grain - 1) / grain);
    const int64_t chunk = one_each ? 1 : std::max<int64_t>(grain, (n + chunks_wanted - 1) / chunks_wanted);
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      chunk_ = chunk;
      one_each_ = one_each;
      next_.store(0);
      pending_.store(static_cast<int>(workers_.size()));
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load() > 0) cv_.notify_all();
    work();
    if (!spin_then_yield([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return pending_.load() == 0; });
    }
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void start(int n) {
    quit_ = false;
    // Workers start from the current generation so none can miss the first job.
    const uint64_t g = generation_.load();
    for (int i = 1; i < n; ++i)
      workers_.emplace_back([this, g, i] {
        t_index = i;
        loop(g);
      });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void work() {
    const bool was = t_inside_pool;
    t_inside_pool = true;
    for (;;) {
      const int64_t b = next_.fetch_add(chunk_);
      if (b >= n_) break;
      try {
        (*fn_)(b, std::min(n_, b + chunk_));
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_);
      }
      if (one_each_) break;
    }
    t_inside_pool = was;
  }

  void loop(uint64_t seen) {
    for (;;) {
      if (!spin_then_yield([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lk(mu_);
        ++sleepers_;
        cv_.wait(lk, [&] { return generation_.load() != seen; });
        --sleepers_;
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        seen = generation_.load();
        if (quit_) return;
      }
      work();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  const RangeFn* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  bool one_each_ = false;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> generation_{0};
  bool quit_ = false;
  std::exception_ptr error_;
};

int default_threads() {
  if (const char* env = std::getenv("MOEMESH_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) { pool().resize(std::max(1, n)); }

PoolWaitPolicy pool_wait_policy() { return {g_spin_us.load(), g_yield_us.load()}; }

void set_pool_wait_policy(const PoolWaitPolicy& p) {
  g_spin_us.store(std::max(0, p.spin_us));
  g_yield_us.store(std::max(p.spin_us, p.yield_us));
}

void run_on_every_thread(RangeFn fn) {
  if (t_inside_pool || pool().size() == 1) {
    fn(0, 1);
    return;
  }
  pool().run(pool().size(), 1, fn, /*one_each=*/true);
}

int current_thread_index() { return t_index; }

void parallel_for(int64_t n, int64_t grain, RangeFn fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (t_inside_pool || n <= grain || pool().size() == 1) {
    fn(0, n);
    return;
  }
  pool().run(n, grain, fn);
}

}  // namespace moemesh::cpu
