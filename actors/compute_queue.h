// Where a role's compute runs: a worker thread that takes jobs in order (each
// job may fan out over the kernels' thread pool). Actors post jobs here and get
// results back as continuations, so actor threads never compute.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace moemesh {

class ComputeQueue {
 public:
  ComputeQueue();
  ~ComputeQueue();  // finishes queued jobs, then joins
  ComputeQueue(const ComputeQueue&) = delete;
  ComputeQueue& operator=(const ComputeQueue&) = delete;

  void post(std::function<void()> job);
  size_t pending() const;

 private:
  void loop();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moemesh
