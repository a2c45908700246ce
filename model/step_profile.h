// Time per operation class of forward steps (`moemesh bench --profile`): each
// class is timed where it runs, so the classes sum to the step's time up to what
// lies between them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace moemesh {

enum class OpClass : int {
  AttentionProjections,  // q_a, q_b (or q), kv_a, o
  MlaCore,               // absorbed/naive attention over the latent cache, rope, cache writes
  Gate,                  // MoE gate and top-k
  RoutedExperts,         // the routed experts (or waiting for them, in the mesh)
  SharedExperts,
  DenseFfn,
  LmHead,
  Norms,                 // RMSNorms
  Rest,                  // embedding, residual adds, batching, MTP input projection
  kCount
};
const char* op_class_name(OpClass c);

class StepProfile {
 public:
  void add(OpClass c, double seconds) { seconds_[static_cast<int>(c)] += seconds; }
  double seconds(OpClass c) const { return seconds_[static_cast<int>(c)]; }
  double total() const;
  void clear() { seconds_.fill(0.0); }

 private:
  std::array<double, static_cast<int>(OpClass::kCount)> seconds_{};
};

// Adds the time of its scope to a profile (nothing when the profile is null).
class OpTimer {
 public:
  OpTimer(StepProfile* p, OpClass c) : p_(p), c_(c) {
    if (p_) t0_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (p_) p_->add(c_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

 private:
  StepProfile* p_;
  OpClass c_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace moemesh
