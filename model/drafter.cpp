#include "model/drafter.h"

#include <stdexcept>

namespace moemesh {

MtpDraftLoop::MtpDraftLoop(int64_t vocab, int64_t hidden, StepFn step, TruncateFn truncate)
    : vocab_(vocab), hidden_(hidden), step_(std::move(step)), truncate_(std::move(truncate)) {}

Draft MtpDraftLoop::draft(const DraftCall& c) {
  if (c.tokens.empty()) throw std::invalid_argument("a draft call needs at least one fed row");
  if (c.k < 0) throw std::invalid_argument("draft length must be >= 0");
  const int64_t V = vocab_, H = hidden_;
  const bool greedy = c.sampling.greedy();
  auto& sampler = samplers_[c.seq];
  if (!sampler) {
    cpu::SamplingParams p = c.sampling;
    p.seed ^= 0x6d7470ull;  // its own stream, apart from the verifier's
    sampler = std::make_unique<cpu::Sampler>(p);
  }
  // Greedy: the argmax; sampling: a draw from the distribution whose logits go back.
  auto pick = [&](const float* logits) { return sampler->sample(logits, V); };
  truncate_(c.seq, c.base);
  Draft d;
  std::vector<float> logits;
  std::vector<float> h = step_(c.seq, c.tokens, c.hidden, &logits);
  const int64_t rows = static_cast<int64_t>(c.tokens.size());
  if (c.want_fed_logits) d.fed_logits = logits;
  if (c.k == 0) return d;
  const float* last_logits = logits.data() + (rows - 1) * V;
  d.tokens.push_back(pick(last_logits));
  if (!greedy) d.logits.assign(last_logits, last_logits + V);
  std::vector<float> last(h.begin() + (rows - 1) * H, h.begin() + rows * H);
  while (static_cast<int>(d.tokens.size()) < c.k) {
    h = step_(c.seq, {d.tokens.back()}, last.data(), &logits);
    d.tokens.push_back(pick(logits.data()));
    if (!greedy) d.logits.insert(d.logits.end(), logits.begin(), logits.begin() + V);
    last.assign(h.begin(), h.end());
  }
  return d;
}

LocalDrafter::LocalDrafter(Engine& engine)
    : engine_(engine),
      loop_(engine.config().vocab_size, engine.config().hidden_size,
            [&engine](SeqId s, const std::vector<int32_t>& t, const float* h, std::vector<float>* l) {
              return engine.mtp_step(s, t, h, l);
            },
            [&engine](SeqId s, int64_t len) {
              if (len > engine.mtp_length(s))
                throw std::runtime_error("the MTP cache is behind: it holds " + std::to_string(engine.mtp_length(s)) +
                                         " positions, asked to continue from " + std::to_string(len));
              engine.mtp_truncate(s, len);
            }) {
  if (!engine.has_mtp()) throw std::logic_error("speculation needs a model with an MTP module");
}

}  // namespace moemesh
