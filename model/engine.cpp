#include "model/engine.h"

#include <algorithm>
#include <future>

#include "kernels/cpu/kernel_scratch.h"

#include <spdlog/spdlog.h>

namespace moemesh {

const float* StepOutput::last_logits(size_t i, int64_t vocab) const {
  const int64_t last_row = chunks.at(i).row + chunks.at(i).len - 1;
  for (size_t r = 0; r < logit_rows.size(); ++r)
    if (logit_rows[r] == last_row) return logits.data() + r * vocab;
  return nullptr;
}

void reserve_kernel_scratch_for(const ModelConfig& c) {
  const int64_t D = c.kv_latent_dim();
  const int64_t max_in = std::max({c.hidden_size * 2, c.intermediate_size, c.moe_intermediate_size * std::max<int64_t>(1, c.n_shared_experts),
                                   c.q_lora_rank, c.num_attention_heads * c.v_head_dim, D});
  // Eight activation rows of the widest input (the small-batch kernels), or the
  // absorbed attention's per-thread share of heads against a cache page.
  cpu::reserve_kernel_scratch(static_cast<size_t>(std::max(8 * max_in, 32 * D) + 64));
}

KvCacheGeometry kv_geometry(const ModelConfig& cfg, int64_t layers, int64_t page_tokens, int64_t tokens,
                            KvCacheDtype dtype) {
  return {layers, cfg.kv_lora_rank, cfg.qk_rope_head_dim, page_tokens, (tokens + page_tokens - 1) / page_tokens, dtype};
}

void plan_chunks(const std::vector<StepInput>& inputs, LatentKvCache& cache, std::vector<SeqChunk>& chunks) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].tokens.empty())
      throw std::invalid_argument("step input for sequence " + std::to_string(inputs[i].seq) + " has no tokens");
    for (size_t j = 0; j < i; ++j)
      if (inputs[j].seq == inputs[i].seq)
        throw std::invalid_argument("sequence " + std::to_string(inputs[i].seq) + " appears twice in one step");
  }
  chunks.clear();
  thread_local std::vector<uint8_t> existed;  // per planned chunk, for the rollback
  existed.clear();
  int64_t row = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const StepInput& in = inputs[i];
    const int64_t start = cache.length(in.seq);
    const bool had = cache.has(in.seq);
    if (!cache.reserve(in.seq, start + static_cast<int64_t>(in.tokens.size()))) {
      // Roll back what this plan reserved: sequences it created go, others shrink back.
      for (size_t j = 0; j < chunks.size(); ++j) {
        if (existed[j]) cache.truncate(chunks[j].seq, chunks[j].start);
        else cache.release(chunks[j].seq);
      }
      throw KvCacheFull("KV cache full: sequence " + std::to_string(in.seq) + " needs " +
                        std::to_string(cache.pages_for(start + in.tokens.size())) + " pages, " +
                        std::to_string(cache.free_pages()) + " free");
    }
    chunks.push_back({in.seq, start, static_cast<int64_t>(in.tokens.size()), row});
    existed.push_back(had);
    row += static_cast<int64_t>(in.tokens.size());
  }
}

Engine::Engine(const std::filesystem::path& dir, const EngineOptions& opts)
    : cfg_(ModelConfig::load(dir)),
      opts_(opts),
      ckpt_(dir),
      main_(cfg_, ckpt_),
      cache_(kv_geometry(cfg_, cfg_.num_hidden_layers, opts.page_tokens, opts.kv_tokens, opts.kv_dtype)) {
  reserve_kernel_scratch_for(cfg_);
  if (opts.prefix_cache) prefix_ = std::make_unique<PrefixCache>(cache_);
  std::vector<int64_t> moe_layers = main_.moe_layers();
  if (opts.load_mtp && cfg_.num_nextn_predict_layers > 0) {
    mtp_ = std::make_unique<MtpModule>(cfg_, ckpt_, &main_);
    if (mtp_->is_moe()) moe_layers.push_back(mtp_->layer());
    mtp_cache_ = std::make_unique<LatentKvCache>(kv_geometry(cfg_, 1, opts.page_tokens, opts.kv_tokens, opts.kv_dtype));
  }
  auto make = [&] {
    return opts.make_moe ? opts.make_moe(cfg_, ckpt_, moe_layers) : std::make_unique<LocalMoe>(cfg_, ckpt_, moe_layers);
  };
  moe_ = make();
  lanes_.push_back(moe_.get());
  for (int i = 1; i < std::min(opts.moe_lanes, 2); ++i) {
    extra_lanes_.push_back(make());
    lanes_.push_back(extra_lanes_.back().get());
  }
  spdlog::debug("engine: {} layers ({} MoE), mtp {}, compute {}, kv cache {}", cfg_.num_hidden_layers,
                moe_layers.size(), has_mtp(), cpu::precision_name(opts.compute), kv_cache_dtype_name(opts.kv_dtype));
}

ForwardContext Engine::context(int lane) {
  ForwardContext ctx;
  ctx.mla = opts_.mla_mode;
  ctx.precision = opts_.compute;
  ctx.ws = &ws_[lane];
  ctx.profile = lane == 0 ? profile_ : nullptr;  // the overlapped lane would double-count wall time
  return ctx;
}

StepOutput Engine::step(const std::vector<StepInput>& inputs) {
  StepOutput out;
  step(inputs, out);
  return out;
}

void Engine::step(const std::vector<StepInput>& inputs, StepOutput& out) {
  const ForwardContext ctx = context(0);
  {
    OpTimer t(ctx.profile, OpClass::Rest);
    tokens_.clear();
    for (const auto& in : inputs) {
      check_token_ids(in.tokens.data(), static_cast<int64_t>(in.tokens.size()), cfg_.vocab_size);
      tokens_.insert(tokens_.end(), in.tokens.begin(), in.tokens.end());
    }
    out.logit_rows.clear();
    plan_chunks(inputs, cache_, out.chunks);
    out.hidden.resize(tokens_.size() * cfg_.hidden_size);
  }
  try {
    main_.forward(tokens_.data(), out.chunks, cache_, ctx, moe_.get(), out.hidden.data());
  } catch (...) {
    for (const auto& c : out.chunks) cache_.truncate(c.seq, c.start);
    throw;
  }
  finish_step(inputs, out);
}

StepOutput Engine::step_overlapped(const std::vector<StepInput>& a, const std::vector<StepInput>& b) {
  if (lanes_.size() < 2 || a.empty() || b.empty()) {
    std::vector<StepInput> all = a;
    all.insert(all.end(), b.begin(), b.end());
    return step(all);
  }
  std::vector<int32_t> ta, tb;
  for (const auto& in : a) {
    check_token_ids(in.tokens.data(), static_cast<int64_t>(in.tokens.size()), cfg_.vocab_size);
    ta.insert(ta.end(), in.tokens.begin(), in.tokens.end());
  }
  for (const auto& in : b) {
    check_token_ids(in.tokens.data(), static_cast<int64_t>(in.tokens.size()), cfg_.vocab_size);
    tb.insert(tb.end(), in.tokens.begin(), in.tokens.end());
  }
  // Cache pages are planned here, on one thread; the two forwards then only
  // write rows of their own sequences.
  std::vector<SeqChunk> ca, cb;
  plan_chunks(a, cache_, ca);
  try {
    plan_chunks(b, cache_, cb);
  } catch (...) {
    for (const auto& c : ca) cache_.truncate(c.seq, c.start);
    throw;
  }
  StepOutput out;
  std::vector<float> hb(tb.size() * cfg_.hidden_size);
  out.hidden.resize(ta.size() * cfg_.hidden_size);
  try {
    const ForwardContext c0 = context(0), c1 = context(1);
    auto second = std::async(std::launch::async, [&] { main_.forward(tb.data(), cb, cache_, c1, lanes_[1], hb.data()); });
    std::exception_ptr first_error;
    try {
      main_.forward(ta.data(), ca, cache_, c0, lanes_[0], out.hidden.data());
    } catch (...) {
      first_error = std::current_exception();
    }
    second.get();  // always joined before anything unwinds
    if (first_error) std::rethrow_exception(first_error);
  } catch (...) {
    for (const auto& c : ca) cache_.truncate(c.seq, c.start);
    for (const auto& c : cb) cache_.truncate(c.seq, c.start);
    throw;
  }
  const int64_t rows_a = static_cast<int64_t>(ta.size());
  for (auto& c : cb) c.row += rows_a;
  out.chunks = ca;
  out.chunks.insert(out.chunks.end(), cb.begin(), cb.end());
  out.hidden.insert(out.hidden.end(), hb.begin(), hb.end());
  std::vector<StepInput> all = a;
  all.insert(all.end(), b.begin(), b.end());
  finish_step(all, out);
  return out;
}

void Engine::finish_step(const std::vector<StepInput>& inputs, StepOutput& out) {
  const ForwardContext ctx = context(0);
  {
    OpTimer t(ctx.profile, OpClass::Rest);
    for (const auto& c : out.chunks) cache_.set_length(c.seq, c.start + c.len);
    out.logit_rows.clear();
    for (size_t i = 0; i < inputs.size(); ++i) {
      const SeqChunk& c = out.chunks[i];
      const int64_t first = inputs[i].all_logits ? c.row : c.row + c.len - 1;
      for (int64_t r = first; r < c.row + c.len; ++r) out.logit_rows.push_back(r);
    }
    out.logits.resize(out.logit_rows.size() * cfg_.vocab_size);
  }
  main_.logits(out.hidden.data(), out.logit_rows, out.logits.data(), ctx);
}

std::vector<float> mtp_cache_step(const MtpModule& mtp, LatentKvCache& cache, const ForwardContext& ctx,
                                  MoeExecutor* moe, int64_t vocab, const std::vector<MtpRows>& inputs,
                                  std::vector<float>& logits) {
  const int64_t H = mtp.hidden();
  std::vector<StepInput> in;
  std::vector<int32_t> tokens;
  for (const auto& r : inputs) {
    if (r.tokens.empty()) throw std::invalid_argument("an MTP step needs at least one row per sequence");
    check_token_ids(r.tokens.data(), static_cast<int64_t>(r.tokens.size()), vocab);
    in.push_back({r.seq, r.tokens, r.all_logits});
    tokens.insert(tokens.end(), r.tokens.begin(), r.tokens.end());
  }
  // The rows' main-model hidden states side by side, as the forward reads them.
  std::vector<float> prev(tokens.size() * H);
  for (size_t i = 0, row = 0; i < inputs.size(); row += inputs[i].tokens.size(), ++i)
    std::copy_n(inputs[i].hidden, inputs[i].tokens.size() * H, prev.begin() + static_cast<std::ptrdiff_t>(row * H));
  std::vector<SeqChunk> chunks;
  plan_chunks(in, cache, chunks);
  std::vector<float> h(tokens.size() * H);
  try {
    mtp.forward(tokens.data(), prev.data(), chunks, cache, ctx, moe, h.data());
  } catch (...) {
    for (const auto& c : chunks) cache.truncate(c.seq, c.start);
    throw;
  }
  // Every row's logits of an input that asks for them all (scoring: the whole
  // vocabulary); the last row's of the others (a draft: the draft vocabulary).
  std::vector<int64_t> full, draft;
  std::vector<std::pair<bool, size_t>> where;  // each output row: (draft, index in its list)
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SeqChunk& c = chunks[i];
    cache.set_length(c.seq, c.start + c.len);
    auto& list = inputs[i].all_logits ? full : draft;
    for (int64_t r = inputs[i].all_logits ? c.row : c.row + c.len - 1; r < c.row + c.len; ++r) {
      where.emplace_back(&list == &draft, list.size());
      list.push_back(r);
    }
  }
  logits.resize(where.size() * vocab);
  if (draft.empty()) {
    mtp.logits(h.data(), full, logits.data(), ctx);
    return h;
  }
  if (full.empty()) {
    mtp.logits(h.data(), draft, logits.data(), ctx, true);
    return h;
  }
  std::vector<float> lf(full.size() * vocab), ld(draft.size() * vocab);
  mtp.logits(h.data(), full, lf.data(), ctx);
  mtp.logits(h.data(), draft, ld.data(), ctx, true);
  for (size_t r = 0; r < where.size(); ++r) {
    const auto& [is_draft, at] = where[r];
    std::copy_n((is_draft ? ld : lf).begin() + static_cast<std::ptrdiff_t>(at * vocab), vocab,
                logits.begin() + static_cast<std::ptrdiff_t>(r * vocab));
  }
  return h;
}

std::vector<float> Engine::mtp_step(const std::vector<MtpRows>& inputs, std::vector<float>& logits) {
  if (!mtp_) throw std::logic_error("this model has no MTP module loaded");
  return mtp_cache_step(*mtp_, *mtp_cache_, context(0), moe_.get(), cfg_.vocab_size, inputs, logits);
}

std::vector<float> Engine::mtp_step(SeqId seq, const std::vector<int32_t>& next_tokens, const float* prev_hidden,
                                    std::vector<float>* logits_out) {
  std::vector<float> logits;
  std::vector<float> h = mtp_step({{seq, next_tokens, prev_hidden, true}}, logits);
  if (logits_out) *logits_out = std::move(logits);
  return h;
}

void Engine::release(SeqId seq) {
  cache_.release(seq);
  if (mtp_cache_) mtp_cache_->release(seq);
}

int64_t Engine::start(SeqId seq, const std::vector<int32_t>& prompt, int64_t total) {
  if (cache_.has(seq)) throw std::logic_error("engine: sequence " + std::to_string(seq) + " already started");
  std::vector<int32_t> pages;
  if (prefix_) pages = prefix_->match(prompt.data(), static_cast<int64_t>(prompt.size()), static_cast<int64_t>(prompt.size()) - 1);
  if (!pages.empty()) cache_.adopt(seq, pages);  // held now: reserve() cannot evict them
  if (!cache_.reserve(seq, total)) {
    cache_.release(seq);
    return -1;
  }
  if (prefix_) prefix_->record(static_cast<int64_t>(prompt.size()), cache_.length(seq));
  return cache_.length(seq);
}

void Engine::cache_prefix(SeqId seq, const std::vector<int32_t>& tokens) {
  if (!prefix_ || !cache_.has(seq)) return;
  const int64_t full = std::min<int64_t>(cache_.length(seq), static_cast<int64_t>(tokens.size())) / cache_.page_tokens();
  const auto& pages = cache_.pages(seq);
  prefix_->insert(tokens.data(), std::vector<int32_t>(pages.begin(), pages.begin() + full));
}

}  // namespace moemesh
