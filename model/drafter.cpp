#include "model/drafter.h"

#include <algorithm>
#include <stdexcept>

namespace moemesh {

MtpDraftLoop::MtpDraftLoop(int64_t vocab, int64_t hidden, StepFn step, TruncateFn truncate)
    : vocab_(vocab), hidden_(hidden), step_(std::move(step)), truncate_(std::move(truncate)) {}

std::vector<Draft> MtpDraftLoop::draft(const std::vector<DraftCall>& calls) {
  const int64_t V = vocab_, H = hidden_;
  int max_k = 0;
  for (const auto& c : calls) {
    if (c.tokens.empty()) throw std::invalid_argument("a draft call needs at least one fed row");
    if (c.k < 0) throw std::invalid_argument("draft length must be >= 0");
    max_k = std::max(max_k, c.k);
  }
  std::vector<cpu::Sampler*> samplers;
  for (const auto& c : calls) {
    auto& s = samplers_[c.seq];
    if (!s) {
      cpu::SamplingParams p = c.sampling;
      p.seed ^= 0x6d7470ull;  // its own stream, apart from the verifier's
      s = std::make_unique<cpu::Sampler>(p);
    }
    samplers.push_back(s.get());
    truncate_(c.seq, c.base);
  }
  std::vector<Draft> out(calls.size());
  // Greedy: the argmax; sampling: a draw from the distribution whose logits go back.
  auto pick = [&](size_t i, const float* logits) {
    out[i].tokens.push_back(samplers[i]->sample(logits, V));
    if (!calls[i].sampling.greedy()) out[i].logits.insert(out[i].logits.end(), logits, logits + V);
  };
  // Position 0: every call's fed rows in one step.
  std::vector<MtpRows> rows;
  for (const auto& c : calls) rows.push_back({c.seq, c.tokens, c.hidden, c.want_fed_logits});
  std::vector<float> logits;
  std::vector<float> h = step_(rows, logits);
  std::vector<float> last(calls.size() * H);  // each call's newest module output
  std::vector<size_t> active;
  for (size_t i = 0, row = 0, lrow = 0; i < calls.size(); ++i) {
    const auto n = calls[i].tokens.size();
    const size_t lrows = calls[i].want_fed_logits ? n : 1;
    if (calls[i].want_fed_logits) out[i].fed_logits.assign(logits.begin() + lrow * V, logits.begin() + (lrow + n) * V);
    row += n;
    lrow += lrows;
    std::copy_n(h.begin() + (row - 1) * H, H, last.begin() + i * H);
    if (calls[i].k == 0) continue;
    pick(i, logits.data() + (lrow - 1) * V);
    if (calls[i].k > 1) active.push_back(i);
  }
  // Positions 1..: the calls still drafting, one row each, in one step.
  for (int d = 1; d < max_k && !active.empty(); ++d) {
    rows.clear();
    for (size_t i : active) rows.push_back({calls[i].seq, {out[i].tokens.back()}, last.data() + i * H, false});  // a draft: one row
    h = step_(rows, logits);
    std::vector<size_t> next;
    for (size_t r = 0; r < active.size(); ++r) {
      const size_t i = active[r];
      std::copy_n(h.begin() + r * H, H, last.begin() + i * H);
      pick(i, logits.data() + r * V);
      if (calls[i].k > d + 1) next.push_back(i);
    }
    active = std::move(next);
  }
  return out;
}

LocalDrafter::LocalDrafter(Engine& engine)
    : engine_(engine),
      loop_(engine.config().vocab_size, engine.config().hidden_size,
            [&engine](const std::vector<MtpRows>& rows, std::vector<float>& logits) { return engine.mtp_step(rows, logits); },
            [&engine](SeqId s, int64_t len) {
              if (len > engine.mtp_length(s))
                throw std::runtime_error("the MTP cache is behind: it holds " + std::to_string(engine.mtp_length(s)) +
                                         " positions, asked to continue from " + std::to_string(len));
              engine.mtp_truncate(s, len);
            }) {
  if (!engine.has_mtp()) throw std::logic_error("speculation needs a model with an MTP module");
}

}  // namespace moemesh
