#include "model/speculative.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/cpu/sampling.h"

namespace moemesh {

std::vector<int32_t> speculative_generate(Engine& e, SeqId seq, const std::vector<int32_t>& prompt, int64_t n,
                                          int k, const cpu::SamplingParams& sampling, SpeculationStats* stats) {
  if (!e.has_mtp()) throw std::logic_error("speculation needs a model with an MTP module");
  if (k < 1) throw std::invalid_argument("draft length must be >= 1");
  const int64_t V = e.config().vocab_size, H = e.config().hidden_size;
  SpeculationStats local;
  SpeculationStats& st = stats ? *stats : local;
  st.drafted.assign(k, 0);
  st.accepted.assign(k, 0);
  std::vector<int32_t> out;
  if (n == 0) return out;
  cpu::Sampler sampler(sampling);
  const bool greedy = sampling.greedy();
  // A token from logits, and (sampling only) the distribution it was drawn from.
  std::vector<float> dist;
  auto pick = [&](const float* logits, std::vector<float>* probs) {
    if (greedy) return cpu::argmax(logits, V);
    cpu::sampling_distribution(logits, V, sampling, *probs);
    double u = sampler.uniform();
    for (int64_t i = 0; i < V; ++i) {
      u -= (*probs)[i];
      if (u < 0.0) return static_cast<int32_t>(i);
    }
    return cpu::argmax(probs->data(), V);
  };

  StepOutput s = e.step({{seq, prompt, true}});
  // Main hidden states not yet seen by the MTP module, with the token after each.
  std::vector<float> pend_h = s.hidden;
  std::vector<int32_t> pend_t(prompt.begin() + 1, prompt.end());
  out.push_back(pick(s.logits.data() + (prompt.size() - 1) * V, &dist));
  pend_t.push_back(out.back());
  std::vector<std::vector<float>> draft_dist(k);

  std::vector<float> mtp_logits;
  while (static_cast<int64_t>(out.size()) < n) {
    // Draft: catch the MTP cache up on real hidden states, then chain its own.
    const int64_t mtp_base = e.mtp_length(seq);
    std::vector<float> h = e.mtp_step(seq, pend_t, pend_h.data(), &mtp_logits);
    const int64_t rows = static_cast<int64_t>(pend_t.size());
    std::vector<int32_t> draft{pick(mtp_logits.data() + (rows - 1) * V, &draft_dist[0])};
    std::vector<float> last(h.begin() + (rows - 1) * H, h.begin() + rows * H);
    while (static_cast<int>(draft.size()) < k) {
      h = e.mtp_step(seq, {draft.back()}, last.data(), &mtp_logits);
      draft.push_back(pick(mtp_logits.data(), &draft_dist[draft.size()]));
      last.assign(h.begin(), h.end());
    }
    // Verify [t_n, d_1..d_k] in one step.
    const int64_t n0 = e.length(seq);
    std::vector<int32_t> verify{out.back()};
    verify.insert(verify.end(), draft.begin(), draft.end());
    s = e.step({{seq, verify, true}});
    ++st.steps;
    // next[i]: the main model's token after verify[0..i] — the draft where it was
    // accepted, else the correction; next[a] is the bonus or corrected token.
    int a = 0;
    std::vector<int32_t> next(verify.size());
    for (int i = 0; i <= k; ++i) {
      const float* logits = s.logits.data() + i * V;
      if (i == k) {
        next[i] = pick(logits, &dist);
        break;
      }
      ++st.drafted[i];
      bool ok;
      if (greedy) {
        next[i] = cpu::argmax(logits, V);
        ok = next[i] == draft[i];
      } else {
        cpu::sampling_distribution(logits, V, sampling, dist);
        const cpu::Verdict v = cpu::verify_draft(dist, draft_dist[i], draft[i], sampler);
        next[i] = v.token;
        ok = v.accepted;
      }
      if (!ok) break;
      ++st.accepted[i];
      ++a;
    }
    // Keep t_n and the accepted drafts; the bonus token comes from the main model.
    e.truncate(seq, n0 + a + 1);
    e.mtp_truncate(seq, mtp_base + rows);
    pend_h.assign(s.hidden.begin(), s.hidden.begin() + (a + 1) * H);
    pend_t.clear();
    for (int i = 0; i < a && static_cast<int64_t>(out.size()) < n; ++i) {
      out.push_back(draft[i]);
      pend_t.push_back(draft[i]);
    }
    if (static_cast<int64_t>(out.size()) < n) out.push_back(next[a]);
    pend_t.push_back(next[a]);
  }
  // As after plain decoding: every output token but the last is in the cache.
  const int64_t keep = static_cast<int64_t>(prompt.size()) + n - 1;
  e.truncate(seq, keep);
  e.mtp_truncate(seq, std::min(e.mtp_length(seq), keep - 1));
  return out;
}

}  // namespace moemesh
