// The seam between attention and experts: the attention side hands a MoE layer's
// normed hidden states to an executor and gets the routed experts' combined output
// back. In one process the executor runs gate and experts locally; in the mesh it
// is an ExpertDispatcher that sends the rows to expert hosts.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>

#include "model/experts.h"
#include "model/forward_context.h"
#include "model/moe_gate.h"

namespace moemesh {

// A MoE layer's routed experts could not be computed: no live host holds one of
// them, or none answered within the wait cap. The step's requests fail; the
// service keeps running, and trying again later may succeed.
class ExpertsUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MoeExecutor {
 public:
  virtual ~MoeExecutor() = default;
  // x: [tokens, hidden]; out: [tokens, hidden], overwritten with Σ routed experts.
  virtual void routed(int64_t layer, const float* x, int64_t tokens, float* out) = 0;
  // The same in two halves, so the caller can compute the shared expert in
  // between: begin() may send the work away, end() waits for it. `x` must stay
  // valid until end(). By default begin() only remembers and end() computes.
  virtual void begin(int64_t layer, const float* x, int64_t tokens) { pending_ = {layer, x, tokens}; }
  virtual void end(float* out) { routed(pending_.layer, pending_.x, pending_.tokens, out); }

  // The forward this executor serves next (precision, scratch, profile); set by the
  // decoder layer before begin(), valid until end().
  void set_context(const ForwardContext* ctx) { ctx_ = ctx; }

 protected:
  const ForwardContext* ctx_ = nullptr;

 private:
  struct Call { int64_t layer = 0; const float* x = nullptr; int64_t tokens = 0; } pending_;
};

// Gates and experts of the given MoE layers, all in this process.
class LocalMoe : public MoeExecutor {
 public:
  LocalMoe(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers);
  void routed(int64_t layer, const float* x, int64_t tokens, float* out) override;

 private:
  const ModelConfig& cfg_;
  std::map<int64_t, std::unique_ptr<MoeGate>> gates_;
  std::map<int64_t, std::unique_ptr<ExpertSet>> experts_;
  Routing routing_;  // reused step to step
  std::vector<float> logits_;
  Workspace own_ws_;  // when called without a forward context
};

}  // namespace moemesh
