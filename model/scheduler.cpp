#include "model/scheduler.h"

#include <algorithm>

#include "model/transformer.h"

namespace moemesh {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "none";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "?";
}

Scheduler::Scheduler(Engine& engine, SchedulerOptions opts) : engine_(engine), opts_(opts) {
  if (opts_.step_tokens < 1 || opts_.max_running < 1) throw std::invalid_argument("scheduler: step_tokens and max_running must be >= 1");
}

void Scheduler::submit(GenerationRequest req) {
  const auto& cache = engine_.cache();
  if (req.prompt.empty()) throw RequestRefused("the prompt is empty");
  if (req.max_new_tokens < 1) throw RequestRefused("max_new_tokens must be at least 1");
  try {
    check_token_ids(req.prompt.data(), static_cast<int64_t>(req.prompt.size()), engine_.config().vocab_size);
  } catch (const std::out_of_range& e) {
    throw RequestRefused(e.what());
  }
  const int64_t total = static_cast<int64_t>(req.prompt.size()) + req.max_new_tokens;
  if (total > engine_.config().max_position_embeddings)
    throw RequestRefused("prompt plus max_new_tokens (" + std::to_string(total) + ") exceeds the model's context of " +
                         std::to_string(engine_.config().max_position_embeddings));
  if (cache.pages_for(total) > cache.total_pages())
    throw RequestRefused("prompt plus max_new_tokens (" + std::to_string(total) + " tokens) exceeds the KV cache (" +
                         std::to_string(cache.total_pages() * cache.page_tokens()) + " tokens)");
  if (static_cast<int64_t>(waiting_.size()) >= opts_.max_waiting) throw RequestRefused("the queue is full");
  if (running_.count(req.id) || std::any_of(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.id == req.id; }))
    throw RequestRefused("request id " + std::to_string(req.id) + " is already in use");
  waiting_.push_back(std::move(req));
}

void Scheduler::cancel(uint64_t id) {
  auto w = std::find_if(waiting_.begin(), waiting_.end(), [&](const auto& r) { return r.id == id; });
  if (w != waiting_.end()) {
    waiting_.erase(w);
    cancelled_.push_back(id);
    return;
  }
  auto it = running_.find(id);
  if (it == running_.end()) return;
  engine_.release(id);
  running_.erase(it);
  cancelled_.push_back(id);
}

void Scheduler::admit() {
  // First come, first served: a request that does not fit yet holds the line, so
  // large requests are not starved by small ones behind them.
  while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < opts_.max_running) {
    GenerationRequest& r = waiting_.front();
    const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens;
    if (!engine_.reserve(r.id, total)) break;
    Active a;
    a.sampler = std::make_unique<cpu::Sampler>(r.sampling);
    a.req = std::move(r);
    waiting_.pop_front();
    const uint64_t id = a.req.id;
    running_.emplace(id, std::move(a));
  }
}

void Scheduler::finish(std::map<uint64_t, Active>::iterator it, FinishReason why, std::vector<TokenEvent>& events) {
  if (!events.empty() && events.back().id == it->first) events.back().finish = why;
  else events.push_back({it->first, -1, why});
  engine_.release(it->first);
  running_.erase(it);
}

std::vector<TokenEvent> Scheduler::step() {
  std::vector<TokenEvent> events;
  for (uint64_t id : cancelled_) events.push_back({id, -1, FinishReason::Cancelled});
  cancelled_.clear();
  admit();
  if (running_.empty()) return events;

  // Decodes first (one token each), then prompt chunks in admission order.
  int64_t budget = opts_.step_tokens;
  std::vector<StepInput> inputs;
  std::vector<uint64_t> ids;
  for (auto& [id, a] : running_) {
    if (a.prefilled < static_cast<int64_t>(a.req.prompt.size()) || budget == 0) continue;
    inputs.push_back({id, {a.generated.back()}, false});
    ids.push_back(id);
    --budget;
  }
  for (auto& [id, a] : running_) {
    const int64_t left = static_cast<int64_t>(a.req.prompt.size()) - a.prefilled;
    if (left == 0 || budget == 0) continue;
    const int64_t n = std::min(left, budget);
    inputs.push_back({id, std::vector<int32_t>(a.req.prompt.begin() + a.prefilled, a.req.prompt.begin() + a.prefilled + n), false});
    ids.push_back(id);
    budget -= n;
  }
  if (inputs.empty()) return events;
  const StepOutput out = engine_.step(inputs);
  const int64_t V = engine_.config().vocab_size;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto it = running_.find(ids[i]);
    Active& a = it->second;
    const bool was_prefill = a.prefilled < static_cast<int64_t>(a.req.prompt.size());
    if (was_prefill) {
      a.prefilled += static_cast<int64_t>(inputs[i].tokens.size());
      if (a.prefilled < static_cast<int64_t>(a.req.prompt.size())) continue;  // more chunks to go
    }
    const int32_t tok = a.sampler->sample(out.last_logits(i, V), V);
    a.generated.push_back(tok);
    events.push_back({ids[i], tok, FinishReason::None});
    if (std::find(a.req.stop_ids.begin(), a.req.stop_ids.end(), tok) != a.req.stop_ids.end())
      finish(it, FinishReason::Stop, events);
    else if (static_cast<int64_t>(a.generated.size()) >= a.req.max_new_tokens)
      finish(it, FinishReason::Length, events);
  }
  return events;
}

}  // namespace moemesh
