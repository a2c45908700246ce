// What the benchmark commands share: deterministic prompts, medians, and
// concurrent clients of a running mesh whose failures are counted, never fatal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "model/drafter.h"
#include "model/scheduler.h"

namespace moemesh::cli {

// `batch` prompts of `len` pseudo-random token ids below `vocab` (the same every run).
std::vector<std::vector<int32_t>> random_prompts(int batch, int64_t len, int64_t vocab);

// `batch` prompts of `len` tokens cut from `tokens` at evenly spread offsets
// (real text, where drafts meet real acceptance).
std::vector<std::vector<int32_t>> text_prompts(const std::vector<int32_t>& tokens, int batch, int64_t len);

double median(std::vector<double> v);

// One process: an engine, its scheduler and, with k > 0, a drafter in this
// process drafting up to k tokens (adaptive or always k). No prefix cache: the
// runs repeat the same prompts, and each must compute them.
class LocalRunner {
 public:
  LocalRunner(const std::string& model, int k, bool adaptive, int64_t kv_tokens);
  // Tokens/s of one run of every prompt at once, `n` new tokens each (greedy).
  double run(const std::vector<std::vector<int32_t>>& prompts, int64_t n);
  const SpeculationStats& speculation() const { return scheduler_->speculation(); }
  // Times the engine's operation classes in the runs that follow (null: off).
  void set_profile(StepProfile* p) { engine_.set_profile(p); }
  int64_t steps() const { return steps_; }  // scheduler steps run so far

 private:
  Engine engine_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<LocalDrafter> drafter_;
  uint64_t next_id_ = 1;
  int64_t steps_ = 0;
};

struct ClientRun {
  double tokens_per_s = 0;
  int failed = 0;
  int64_t tokens = 0;
};

// One request per prompt, all at once, each from its own client thread (greedy,
// `n` new tokens each). A failed request is counted and its reason logged.
ClientRun run_clients(zmq::context_t& ctx, const std::string& attention, const std::vector<std::vector<int32_t>>& prompts,
                      int64_t n);

// A warm-up run, then the median tokens/s of `repeat` (failures of all of them summed).
ClientRun run_clients_repeated(zmq::context_t& ctx, const std::string& attention,
                               const std::vector<std::vector<int32_t>>& prompts, int64_t n, int repeat);

}  // namespace moemesh::cli
