#include "actors/compute_queue.h"

#include <spdlog/spdlog.h>

namespace moemesh {

ComputeQueue::ComputeQueue() : thread_([this] { loop(); }) {}

ComputeQueue::~ComputeQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ComputeQueue::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

size_t ComputeQueue::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

void ComputeQueue::loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      // Jobs report their own failures; this only keeps the worker alive.
      spdlog::error("compute job failed: {}", e.what());
    }
  }
}

}  // namespace moemesh
