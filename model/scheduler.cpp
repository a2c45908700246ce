#include "model/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "model/transformer.h"

namespace moemesh {
namespace {
// Decode steps a request may go without drafts and still take them up again:
// past it the drafter's catch-up costs more than drafting would bring back.
constexpr int kMaxUndraftedSteps = 64;
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "none";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
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
  if (req.min_tokens < 0 || req.min_tokens > req.max_new_tokens)
    throw RequestRefused("min_tokens must be between 0 and max_new_tokens (" + std::to_string(req.max_new_tokens) + ")");
  const auto& adj = req.adjust;
  if (!(adj.presence_penalty >= -2.0f && adj.presence_penalty <= 2.0f)) throw RequestRefused("presence_penalty must be between -2 and 2");
  if (!(adj.frequency_penalty >= -2.0f && adj.frequency_penalty <= 2.0f)) throw RequestRefused("frequency_penalty must be between -2 and 2");
  if (!(adj.repetition_penalty > 0.0f && adj.repetition_penalty <= 10.0f)) throw RequestRefused("repetition_penalty must be above 0 and at most 10");
  if (!(req.sampling.min_p >= 0.0f && req.sampling.min_p <= 1.0f)) throw RequestRefused("min_p must be between 0 and 1");
  if (adj.logit_bias.size() > kMaxLogitBias) throw RequestRefused("logit_bias takes at most " + std::to_string(kMaxLogitBias) + " tokens");
  for (const auto& [id, bias] : adj.logit_bias) {
    if (id < 0 || id >= engine_.config().vocab_size)
      throw RequestRefused("logit_bias names token " + std::to_string(id) + ", outside the vocabulary of " + std::to_string(engine_.config().vocab_size));
    if (!(bias >= -100.0f && bias <= 100.0f)) throw RequestRefused("logit_bias values must be between -100 and 100");
  }
  if (!req.grammar.empty() && !req.constraint)
    throw RequestRefused("structured output needs the model's tokenizer beside this attention role's checkpoint");
  if (req.constraint && static_cast<int64_t>(req.constraint->vocab().size()) != engine_.config().vocab_size)
    throw RequestRefused("the grammar's token table does not match the model's vocabulary");
  if (req.top_logprobs < -1 || req.top_logprobs > kMaxTopLogprobs)
    throw RequestRefused("top_logprobs must be between 0 and " + std::to_string(kMaxTopLogprobs));
  try {
    check_token_ids(req.prompt.data(), static_cast<int64_t>(req.prompt.size()), engine_.config().vocab_size);
  } catch (const std::out_of_range& e) {
    throw RequestRefused(e.what());
  }
  if (req.resumed < 0 || req.resumed >= static_cast<int64_t>(req.prompt.size()))
    throw RequestRefused("resumed must be between 0 and the prompt's length less one");
  if (req.resumed > 0 && req.constraint) {
    // The grammar must have allowed what was generated before.
    grammar::Matcher m(req.constraint->grammar());
    for (size_t i = req.prompt.size() - static_cast<size_t>(req.resumed); i < req.prompt.size(); ++i)
      if (!m.accept(req.constraint->vocab().bytes(req.prompt[i])))
        throw RequestRefused("the resumed tokens do not follow the request's grammar");
  }
  const int64_t total = static_cast<int64_t>(req.prompt.size()) + req.max_new_tokens;
  if (total > engine_.config().max_position_embeddings)
    throw RequestRefused("prompt plus max_new_tokens (" + std::to_string(total) + ") exceeds the model's context of " +
                         std::to_string(engine_.config().max_position_embeddings), Refusal::TooLarge);
  if (cache.pages_for(total) > cache.total_pages())
    throw RequestRefused("prompt plus max_new_tokens (" + std::to_string(total) + " tokens) exceeds the KV cache (" +
                         std::to_string(cache.total_pages() * cache.page_tokens()) + " tokens)", Refusal::TooLarge);
  if (static_cast<int64_t>(waiting_.size()) >= opts_.max_waiting) throw RequestRefused("the queue is full", Refusal::Overloaded);
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
  cache_pages(it->second);  // what it computed stays useful to others
  engine_.release(id);
  running_.erase(it);
  cancelled_.push_back(id);
}

bool Scheduler::waits_for_prefill(const GenerationRequest& r) const {
  if (!engine_.prefix_cache()) return false;
  const int64_t page = engine_.cache().page_tokens();
  for (const auto& [id, a] : running_) {
    const auto& p = a.req.prompt;
    if (a.prefilled >= static_cast<int64_t>(p.size())) continue;
    const auto m = std::mismatch(r.prompt.begin(), r.prompt.end(), p.begin(), p.end());
    const int64_t shared = (m.first - r.prompt.begin()) / page * page;
    if (shared > a.prefilled) return true;  // pages it is about to compute
  }
  return false;
}

void Scheduler::admit() {
  // First come, first served: a request that does not fit yet holds the line, so
  // large requests are not starved by small ones behind them. One that waits for
  // a running request's prompt pages steps aside meanwhile.
  for (size_t i = 0; i < waiting_.size() && static_cast<int64_t>(running_.size()) < opts_.max_running;) {
    GenerationRequest& r = waiting_[i];
    if (waits_for_prefill(r)) {
      ++i;
      continue;
    }
    const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens;
    const int64_t hit = engine_.start(r.id, r.prompt, total);
    if (hit < 0) break;
    Active a;
    a.sampler = std::make_unique<cpu::Sampler>(r.sampling);
    a.prefilled = a.cached = hit;
    a.cached_pages = hit / engine_.cache().page_tokens();
    // The drafter's own cache has nothing of a prefix the main model did not
    // recompute (nor the hidden states to catch up on): such a request decodes
    // without drafts. docs/PREFIX_CACHE.md says why.
    a.speculate = drafter_ != nullptr && hit == 0;
    if (r.adjust.repetition_penalty != 1.0f) {
      a.history.prompt = r.prompt;
      std::sort(a.history.prompt.begin(), a.history.prompt.end());
      a.history.prompt.erase(std::unique(a.history.prompt.begin(), a.history.prompt.end()), a.history.prompt.end());
    }
    if (r.constraint) a.matcher.emplace(r.constraint->grammar());
    // A resumed generation's earlier output: seen by the penalties, read by the grammar.
    for (size_t k = r.prompt.size() - static_cast<size_t>(r.resumed); k < r.prompt.size(); ++k) {
      if (r.adjust.counts_history()) a.history.add(r.prompt[k]);
      if (a.matcher) a.matcher->accept(r.constraint->vocab().bytes(r.prompt[k]));
    }
    a.req = std::move(r);
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    const uint64_t id = a.req.id;
    running_.emplace(id, std::move(a));
  }
}

const float* Scheduler::sampling_logits(const Active& a, const float* logits, std::span<const int32_t> ahead,
                                        const grammar::Matcher* matcher) {
  bool mask = !a.req.stop_ids.empty() && static_cast<int64_t>(a.generated.size() + ahead.size()) < a.req.min_tokens;
  const grammar::Matcher* gm = a.req.constraint ? (matcher ? matcher : &*a.matcher) : nullptr;
  if (!mask && !a.req.adjust.any() && !gm) return logits;
  const int64_t V = engine_.config().vocab_size;
  masked_.assign(logits, logits + V);
  cpu::adjust_logits(masked_.data(), V, a.req.adjust, a.history, ahead);
  if (gm) {
    // The stop ids' adjusted logits, to put back where the document is whole.
    stop_logits_.clear();
    for (int32_t s : a.req.stop_ids) stop_logits_.push_back(s >= 0 && s < V ? masked_[static_cast<size_t>(s)] : 0.0f);
    a.req.constraint->allowed_tokens(*gm, allowed_);
    bool any = false;
    for (int64_t t = 0; t < V; ++t) {
      if (grammar::allowed(allowed_, static_cast<int32_t>(t))) any = true;
      else masked_[static_cast<size_t>(t)] = -INFINITY;
    }
    // Stop ids only where the text is a whole sentence (then even before
    // min_tokens if nothing else may follow).
    if (gm->accepting())
      for (size_t k = 0; k < a.req.stop_ids.size(); ++k) {
        const int32_t s = a.req.stop_ids[k];
        if (s >= 0 && s < V) masked_[static_cast<size_t>(s)] = stop_logits_[k];
      }
    if (!any) {
      mask = false;
      // A vocabulary that cannot spell any way on (one without some byte).
      if (!gm->accepting()) dead_end_ = true;
    }
  }
  if (mask)
    for (int32_t s : a.req.stop_ids)
      if (s >= 0 && s < V) masked_[static_cast<size_t>(s)] = -INFINITY;
  return masked_.data();
}

void Scheduler::set_drafter(Drafter* drafter, int k) {
  if (k < 0) throw std::invalid_argument("draft length must be >= 0");
  drafter_ = k > 0 ? drafter : nullptr;
  spec_k_ = drafter_ ? k : 0;
  policy_.emplace(spec_k_, opts_.adaptive_speculation);
  spec_stats_.drafted.assign(spec_k_, 0);
  spec_stats_.accepted.assign(spec_k_, 0);
}

void Scheduler::cache_pages(Active& a) {
  if (!engine_.prefix_cache()) return;
  const int64_t full = engine_.length(a.req.id) / engine_.cache().page_tokens();
  if (full <= a.cached_pages) return;
  std::vector<int32_t> tokens = a.req.prompt;
  tokens.insert(tokens.end(), a.generated.begin(), a.generated.end());
  engine_.cache_prefix(a.req.id, tokens);
  a.cached_pages = std::max(a.cached_pages, full);
}

void Scheduler::finish(std::map<uint64_t, Active>::iterator it, FinishReason why, std::vector<TokenEvent>& events) {
  if (!events.empty() && events.back().id == it->first && events.back().finish == FinishReason::None) events.back().finish = why;
  else events.push_back({it->first, -1, why, {}});
  events.back().cached_tokens = it->second.cached;
  cache_pages(it->second);
  engine_.release(it->first);
  if (it->second.speculate && drafter_) {
    try {
      drafter_->release(it->first);
    } catch (const std::exception&) {
      // The drafter forgets the sequence when it restarts anyway.
    }
  }
  running_.erase(it);
}

bool Scheduler::dead_end(std::map<uint64_t, Active>::iterator it, std::vector<TokenEvent>& events) {
  if (!dead_end_) return false;
  dead_end_ = false;
  finish(it, FinishReason::Error, events);
  events.back().error = "the grammar cannot go on with any token of this vocabulary";
  return true;
}

bool Scheduler::emit(std::map<uint64_t, Active>::iterator it, int32_t tok, const float* logits, std::vector<TokenEvent>& events) {
  Active& a = it->second;
  a.generated.push_back(tok);
  if (a.req.adjust.counts_history()) a.history.add(tok);
  events.push_back({it->first, tok, FinishReason::None, {}});
  if (a.req.top_logprobs >= 0)
    events.back().logprobs = cpu::token_logprobs(logits, engine_.config().vocab_size, tok, a.req.top_logprobs);
  if (std::find(a.req.stop_ids.begin(), a.req.stop_ids.end(), tok) != a.req.stop_ids.end()) {
    finish(it, FinishReason::Stop, events);
    return true;
  }
  if (a.matcher) {
    if (!a.matcher->accept(a.req.constraint->vocab().bytes(tok))) {
      finish(it, FinishReason::Error, events);
      events.back().error = "token " + std::to_string(tok) + " leaves the grammar";
      return true;
    }
    if (a.matcher->accepting() && !a.matcher->can_continue()) {
      finish(it, FinishReason::Stop, events);  // the sentence is complete and nothing may follow
      return true;
    }
  }
  if (static_cast<int64_t>(a.generated.size()) >= a.req.max_new_tokens) {
    finish(it, FinishReason::Length, events);
    return true;
  }
  return false;
}

std::map<uint64_t, Draft> Scheduler::make_drafts(int64_t budget) {
  std::map<uint64_t, Draft> drafts;
  if (!drafter_) return drafts;
  int64_t decoding = 0;
  for (const auto& [id, a] : running_) decoding += a.prefilled == static_cast<int64_t>(a.req.prompt.size());
  if (decoding > opts_.max_speculative_batch) return drafts;
  // Who may draft, and how many at most: the length left, and the step's budget
  // after one token for every decoding request.
  std::vector<uint64_t> who;
  std::vector<DraftPolicy::Candidate> cands;
  int64_t spare = budget - std::min(budget, decoding);
  for (auto& [id, a] : running_) {
    if (a.prefilled < static_cast<int64_t>(a.req.prompt.size())) continue;
    if (a.speculate && (a.pend_t.size() > 1024 || a.undrafted_steps > kMaxUndraftedSteps)) {
      // Too long without drafting: the drafter's catch-up on every token since
      // (a prefill through the MTP layer) would cost more than drafting brings
      // back; the request goes on plainly.
      a.speculate = false;
      a.pend_h.clear();
      a.pend_t.clear();
      drafter_->release(id);
    }
    if (!a.speculate || a.pend_t.empty()) continue;
    // Adaptive drafting depends on measured timings; a sampled request's tokens
    // depend on where drafts were made, so it decodes plainly and its seed repeats
    // whatever the load (fixed drafting drafts it too). Requests that pick the most
    // likely token draft as greedy ones do, so that they decode as greedy ones.
    if (policy_->adaptive() && !a.req.sampling.picks_most_likely()) continue;
    const int64_t left = a.req.max_new_tokens - static_cast<int64_t>(a.generated.size());
    const int k = static_cast<int>(std::min<int64_t>({spec_k_, left - 1, spare}));
    if (k <= 0) continue;
    who.push_back(id);
    cands.push_back({&a.drafts, k});
  }
  if (cands.empty()) return drafts;
  std::vector<int> ks = policy_->choose(cands, decoding);
  for (size_t i = 0; i < who.size(); ++i) {
    int& u = running_.at(who[i]).undrafted_steps;
    u = ks[i] > 0 ? 0 : u + 1;
  }
  // The budget holds every chosen draft (in admission order, as the inputs are built).
  std::vector<DraftCall> calls;
  std::vector<uint64_t> called;
  for (size_t i = 0; i < who.size(); ++i) {
    const int k = static_cast<int>(std::min<int64_t>(ks[i], spare));
    if (k <= 0) continue;
    spare -= k;
    Active& a = running_.at(who[i]);
    calls.push_back(DraftCall{who[i], a.mtp_len, a.pend_t, a.pend_h.data(), k, a.req.sampling, false});
    called.push_back(who[i]);
  }
  if (calls.empty()) return drafts;
  try {
    std::vector<Draft> d = drafter_->draft(calls);
    if (d.size() != calls.size()) throw std::runtime_error("the drafter answered the wrong number of calls");
    for (size_t i = 0; i < calls.size(); ++i)
      if (static_cast<int>(d[i].tokens.size()) != calls[i].k) throw std::runtime_error("the drafter returned the wrong number of tokens");
    for (size_t i = 0; i < calls.size(); ++i) {
      Active& a = running_.at(called[i]);
      a.mtp_len += static_cast<int64_t>(a.pend_t.size());
      drafts.emplace(called[i], std::move(d[i]));
    }
  } catch (const std::exception&) {
    // No drafts for these requests from now on; they go on without speculation.
    for (uint64_t id : called) {
      Active& a = running_.at(id);
      a.speculate = false;
      a.pend_h.clear();
      a.pend_t.clear();
    }
  }
  return drafts;
}

std::vector<TokenEvent> Scheduler::step() {
  std::vector<TokenEvent> events;
  for (uint64_t id : cancelled_) events.push_back({id, -1, FinishReason::Cancelled, {}});
  cancelled_.clear();
  admit();
  if (running_.empty()) return events;

  // Decodes first (one token each, plus drafts when speculating), then prompt
  // chunks in admission order.
  const int64_t H = engine_.config().hidden_size, V = engine_.config().vocab_size;
  int64_t budget = opts_.step_tokens;
  std::vector<StepInput> inputs;
  std::vector<uint64_t> ids;
  int64_t prompt_left = 0;
  for (const auto& [id, a] : running_) prompt_left += static_cast<int64_t>(a.req.prompt.size()) - a.prefilled;
  const int64_t batch = static_cast<int64_t>(running_.size());
  const auto step_t0 = std::chrono::steady_clock::now();
  std::map<uint64_t, Draft> drafts = make_drafts(budget);
  for (auto& [id, a] : running_) {
    if (a.prefilled < static_cast<int64_t>(a.req.prompt.size()) || budget == 0) continue;
    StepInput in{id, {a.generated.back()}, false};
    if (auto d = drafts.find(id); d != drafts.end()) {
      in.tokens.insert(in.tokens.end(), d->second.tokens.begin(), d->second.tokens.end());
      in.all_logits = true;
    }
    budget -= static_cast<int64_t>(in.tokens.size());
    inputs.push_back(std::move(in));
    ids.push_back(id);
  }
  for (auto& [id, a] : running_) {
    const int64_t left = static_cast<int64_t>(a.req.prompt.size()) - a.prefilled;
    if (left == 0 || budget <= 0) continue;
    const int64_t n = std::min(left, budget);
    inputs.push_back({id, std::vector<int32_t>(a.req.prompt.begin() + a.prefilled, a.req.prompt.begin() + a.prefilled + n), false});
    ids.push_back(id);
    budget -= n;
  }
  if (inputs.empty()) return events;
  std::vector<int64_t> lengths;
  for (const auto& in : inputs) lengths.push_back(engine_.length(in.seq));
  StepOutput out;
  try {
    if (engine_.moe_lanes() >= 2 && inputs.size() >= 2) {
      // Two micro-batches of about equal tokens, in flight together.
      int64_t total = 0, acc = 0;
      for (const auto& in : inputs) total += static_cast<int64_t>(in.tokens.size());
      size_t cut = 0;
      while (cut + 1 < inputs.size() && (acc += static_cast<int64_t>(inputs[cut].tokens.size())) * 2 < total) ++cut;
      ++cut;
      out = engine_.step_overlapped(std::vector<StepInput>(inputs.begin(), inputs.begin() + cut),
                                    std::vector<StepInput>(inputs.begin() + cut, inputs.end()));
    } else {
      out = engine_.step(inputs);
    }
  } catch (const std::exception& e) {
    // Nothing of this step stays in the cache; its requests fail, the rest go on.
    for (uint64_t id : ids) {
      auto it = running_.find(id);
      if (it == running_.end()) continue;
      finish(it, FinishReason::Error, events);
      events.back().error = e.what();
      events.back().unavailable = dynamic_cast<const ExpertsUnavailable*>(&e) != nullptr;
    }
    return events;
  }
  size_t logit_row = 0;
  std::vector<float> p, q;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const SeqChunk& c = out.chunks[i];
    const float* logits = out.logits.data() + logit_row * V;
    logit_row += inputs[i].all_logits ? static_cast<size_t>(c.len) : 1;
    auto it = running_.find(ids[i]);
    Active& a = it->second;
    const float* hidden = out.hidden.data() + c.row * H;
    const bool was_prefill = a.prefilled < static_cast<int64_t>(a.req.prompt.size());
    if (was_prefill) {
      a.prefilled += static_cast<int64_t>(inputs[i].tokens.size());
      if (a.speculate) {
        a.pend_h.insert(a.pend_h.end(), hidden, hidden + c.len * H);
        // The token after each row; the last row's is the one sampled below.
        for (int64_t r = a.prefilled - c.len + 1; r < a.prefilled + 1 && r < static_cast<int64_t>(a.req.prompt.size()); ++r)
          a.pend_t.push_back(a.req.prompt[r]);
      }
      if (a.prefilled < static_cast<int64_t>(a.req.prompt.size())) continue;  // more chunks to go
      const int32_t tok = a.sampler->sample(sampling_logits(a, logits), V);  // prefill chunks carry only the last row's logits
      if (dead_end(it, events)) continue;
      if (a.speculate) a.pend_t.push_back(tok);
      emit(it, tok, logits, events);
      continue;
    }
    auto d = drafts.find(ids[i]);
    if (d == drafts.end()) {
      const int32_t tok = a.sampler->sample(sampling_logits(a, logits), V);
      if (dead_end(it, events)) continue;
      if (a.speculate) {
        a.pend_h.insert(a.pend_h.end(), hidden, hidden + H);
        a.pend_t.push_back(tok);
      }
      emit(it, tok, logits, events);
      continue;
    }
    // Verify the drafts: keep them while the main model agrees (greedy) or while
    // rejection sampling accepts them; the token after is the main model's.
    const Draft& dr = d->second;
    const int k = static_cast<int>(dr.tokens.size());
    const bool greedy = a.req.sampling.greedy();
    int acc = 0;
    int32_t next = -1;
    ++spec_stats_.steps;
    // With a grammar: where the text stands with the drafts accepted so far.
    std::optional<grammar::Matcher> ahead;
    if (a.matcher) ahead = a.matcher;
    for (int j = 0; j <= k; ++j) {
      // Verified against what plain decoding would sample from at this position.
      const float* lj = sampling_logits(a, logits + j * V, std::span<const int32_t>(dr.tokens.data(), static_cast<size_t>(j)),
                                        ahead ? &*ahead : nullptr);
      if (dead_end_) break;  // handled below: the accepted drafts go out, then the request fails
      if (j == k) {
        next = a.sampler->sample(lj, V);
        break;
      }
      ++spec_stats_.drafted[j];
      bool ok;
      if (greedy) {
        next = cpu::argmax(lj, V);
        ok = next == dr.tokens[j];
      } else {
        cpu::sampling_distribution(lj, V, a.req.sampling, p);
        cpu::sampling_distribution(dr.logits.data() + j * V, V, a.req.sampling, q);
        const cpu::Verdict v = cpu::verify_draft(p, q, dr.tokens[j], *a.sampler);
        next = v.token;
        ok = v.accepted;
      }
      if (!ok) break;
      ++spec_stats_.accepted[j];
      ++acc;
      // Accepted, so the grammar allowed it (masked tokens have no mass).
      if (ahead) ahead->accept(a.req.constraint->vocab().bytes(dr.tokens[j]));
    }
    policy_->record_verdict(a.drafts, k, acc);
    // The cache keeps the last token and the accepted drafts.
    engine_.truncate(ids[i], lengths[i] + acc + 1);
    a.pend_h.assign(hidden, hidden + (acc + 1) * H);
    a.pend_t.assign(dr.tokens.begin(), dr.tokens.begin() + acc);
    a.pend_t.push_back(next);
    bool done = false;
    // Each emitted token's logprobs come from the verifying row that chose it.
    for (int j = 0; j < acc && !done; ++j) done = emit(it, dr.tokens[j], logits + j * V, events);
    if (dead_end_) {
      if (!done) dead_end(it, events);
      dead_end_ = false;
      continue;
    }
    if (!done) emit(it, next, logits + acc * V, events);
  }
  // Pages this step completed join the prefix cache now, not only at the end:
  // a long prompt being answered already serves the next request sharing it.
  for (uint64_t id : ids) {
    auto it = running_.find(id);
    if (it != running_.end()) cache_pages(it->second);
  }
  if (policy_) {
    // What the step delivered, drafting included: the policy's check on itself.
    int64_t emitted = 0;
    for (const auto& ev : events) emitted += ev.token >= 0;
    policy_->record_outcome(emitted, std::chrono::duration<double>(std::chrono::steady_clock::now() - step_t0).count(),
                            /*decode_only=*/prompt_left == 0, batch);
  }
  return events;
}

}  // namespace moemesh
