#include "model/engine.h"

#include <future>

#include <spdlog/spdlog.h>

namespace moemesh {

const float* StepOutput::last_logits(size_t i, int64_t vocab) const {
  const int64_t last_row = chunks.at(i).row + chunks.at(i).len - 1;
  for (size_t r = 0; r < logit_rows.size(); ++r)
    if (logit_rows[r] == last_row) return logits.data() + r * vocab;
  return nullptr;
}

std::vector<SeqChunk> plan_chunks(const std::vector<StepInput>& inputs, LatentKvCache& cache) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].tokens.empty())
      throw std::invalid_argument("step input for sequence " + std::to_string(inputs[i].seq) + " has no tokens");
    for (size_t j = 0; j < i; ++j)
      if (inputs[j].seq == inputs[i].seq)
        throw std::invalid_argument("sequence " + std::to_string(inputs[i].seq) + " appears twice in one step");
  }
  std::vector<SeqChunk> chunks;
  std::vector<std::pair<SeqId, int64_t>> before;  // for rollback
  int64_t row = 0;
  for (const auto& in : inputs) {
    const int64_t start = cache.length(in.seq);
    const bool existed = cache.has(in.seq);
    if (!cache.reserve(in.seq, start + static_cast<int64_t>(in.tokens.size()))) {
      for (auto& [s, len] : before) {
        if (len < 0) cache.release(s);
        else cache.truncate(s, len);
      }
      throw KvCacheFull("KV cache full: sequence " + std::to_string(in.seq) + " needs " +
                        std::to_string(cache.pages_for(start + in.tokens.size())) + " pages, " +
                        std::to_string(cache.free_pages()) + " free");
    }
    before.emplace_back(in.seq, existed ? start : -1);
    chunks.push_back({in.seq, start, static_cast<int64_t>(in.tokens.size()), row});
    row += static_cast<int64_t>(in.tokens.size());
  }
  return chunks;
}

Engine::Engine(const std::filesystem::path& dir, const EngineOptions& opts)
    : cfg_(ModelConfig::load(dir)),
      opts_(opts),
      ckpt_(dir),
      main_(cfg_, ckpt_),
      cache_(cfg_.num_hidden_layers, cfg_.kv_latent_dim(), opts.page_tokens,
             (opts.kv_tokens + opts.page_tokens - 1) / opts.page_tokens) {
  std::vector<int64_t> moe_layers = main_.moe_layers();
  if (opts.load_mtp && cfg_.num_nextn_predict_layers > 0) {
    mtp_ = std::make_unique<MtpModule>(cfg_, ckpt_, &main_);
    if (mtp_->is_moe()) moe_layers.push_back(mtp_->layer());
    mtp_cache_ = std::make_unique<LatentKvCache>(1, cfg_.kv_latent_dim(), opts.page_tokens,
                                                 (opts.kv_tokens + opts.page_tokens - 1) / opts.page_tokens);
  }
  auto make = [&] {
    return opts.make_moe ? opts.make_moe(cfg_, ckpt_, moe_layers) : std::make_unique<LocalMoe>(cfg_, ckpt_, moe_layers);
  };
  moe_ = make();
  lanes_.push_back(moe_.get());
  for (int i = 1; i < opts.moe_lanes; ++i) {
    extra_lanes_.push_back(make());
    lanes_.push_back(extra_lanes_.back().get());
  }
  spdlog::debug("engine: {} layers ({} MoE), mtp {}", cfg_.num_hidden_layers, moe_layers.size(), has_mtp());
}

StepOutput Engine::step(const std::vector<StepInput>& inputs) {
  std::vector<int32_t> tokens;
  for (const auto& in : inputs) {
    check_token_ids(in.tokens.data(), static_cast<int64_t>(in.tokens.size()), cfg_.vocab_size);
    tokens.insert(tokens.end(), in.tokens.begin(), in.tokens.end());
  }
  StepOutput out;
  out.chunks = plan_chunks(inputs, cache_);
  try {
    out.hidden = main_.forward(tokens.data(), out.chunks, cache_, opts_.mla_mode, moe_.get());
  } catch (...) {
    for (const auto& c : out.chunks) cache_.truncate(c.seq, c.start);
    throw;
  }
  finish_step(inputs, out);
  return out;
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
  std::vector<SeqChunk> ca = plan_chunks(a, cache_), cb;
  try {
    cb = plan_chunks(b, cache_);
  } catch (...) {
    for (const auto& c : ca) cache_.truncate(c.seq, c.start);
    throw;
  }
  StepOutput out;
  std::vector<float> hb;
  try {
    auto second = std::async(std::launch::async, [&] { return main_.forward(tb.data(), cb, cache_, opts_.mla_mode, lanes_[1]); });
    std::exception_ptr first_error;
    try {
      out.hidden = main_.forward(ta.data(), ca, cache_, opts_.mla_mode, lanes_[0]);
    } catch (...) {
      first_error = std::current_exception();
    }
    hb = second.get();  // always joined before anything unwinds
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
  for (const auto& c : out.chunks) cache_.set_length(c.seq, c.start + c.len);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const SeqChunk& c = out.chunks[i];
    const int64_t first = inputs[i].all_logits ? c.row : c.row + c.len - 1;
    for (int64_t r = first; r < c.row + c.len; ++r) out.logit_rows.push_back(r);
  }
  out.logits.resize(out.logit_rows.size() * cfg_.vocab_size);
  main_.logits(out.hidden.data(), out.logit_rows, out.logits.data());
}

std::vector<float> mtp_cache_step(const MtpModule& mtp, LatentKvCache& cache, MlaMode mode, MoeExecutor* moe, int64_t vocab,
                                  SeqId seq, const std::vector<int32_t>& next_tokens, const float* prev_hidden,
                                  std::vector<float>* logits_out) {
  std::vector<StepInput> in{{seq, next_tokens, true}};
  check_token_ids(next_tokens.data(), static_cast<int64_t>(next_tokens.size()), vocab);
  std::vector<SeqChunk> chunks = plan_chunks(in, cache);
  std::vector<float> h;
  try {
    h = mtp.forward(next_tokens.data(), prev_hidden, chunks, cache, mode, moe);
  } catch (...) {
    cache.truncate(seq, chunks[0].start);
    throw;
  }
  cache.set_length(seq, chunks[0].start + chunks[0].len);
  if (logits_out) {
    std::vector<int64_t> rows(next_tokens.size());
    for (size_t r = 0; r < rows.size(); ++r) rows[r] = static_cast<int64_t>(r);
    logits_out->resize(rows.size() * vocab);
    mtp.logits(h.data(), rows, logits_out->data());
  }
  return h;
}

std::vector<float> Engine::mtp_step(SeqId seq, const std::vector<int32_t>& next_tokens,
                                    const float* prev_hidden, std::vector<float>* logits_out) {
  if (!mtp_) throw std::logic_error("this model has no MTP module loaded");
  return mtp_cache_step(*mtp_, *mtp_cache_, opts_.mla_mode, moe_.get(), cfg_.vocab_size, seq, next_tokens, prev_hidden,
                        logits_out);
}

void Engine::release(SeqId seq) {
  cache_.release(seq);
  if (mtp_cache_) mtp_cache_->release(seq);
}

}  // namespace moemesh
