#include "services/mesh/mesh_eval.h"

namespace moemesh {
namespace {
std::vector<std::vector<float>> rows_of(const std::vector<float>& data, int64_t width) {
  std::vector<std::vector<float>> out(data.size() / width);
  for (size_t r = 0; r < out.size(); ++r) out[r].assign(data.begin() + r * width, data.begin() + (r + 1) * width);
  return out;
}
}  // namespace

nlohmann::json run_eval_on_mesh(AttentionClient& client, const EvalRequest& req, int64_t vocab, bool mtp) {
  nlohmann::json out;
  out["sequences"] = nlohmann::json::array();
  if (!req.sequences.empty()) {
    const auto s = client.score(req.sequences, mtp);
    size_t row = 0, mrow = 0;
    for (const auto& seq : req.sequences) {
      const size_t n = seq.size();
      nlohmann::json j;
      j["tokens"] = seq;
      j["logits"] = rows_of(std::vector<float>(s.logits.begin() + row * vocab, s.logits.begin() + (row + n) * vocab), vocab);
      if (mtp) {
        j["mtp_logits"] = rows_of(std::vector<float>(s.mtp_logits.begin() + mrow * vocab, s.mtp_logits.begin() + (mrow + n - 1) * vocab), vocab);
        mrow += n - 1;
      }
      row += n;
      out["sequences"].push_back(std::move(j));
    }
  }
  if (req.has_greedy) {
    std::vector<int32_t> toks;
    if (req.greedy_new_tokens > 0) {
      GenerationRequest g;
      g.prompt = req.greedy_prompt;
      g.max_new_tokens = req.greedy_new_tokens;  // no stop ids: EOS does not stop it
      const TokensUpdate r = client.generate(g);
      if (r.finish == FinishReason::Error) throw MeshError(r.code, "greedy generation failed: " + r.error);
      toks = r.tokens;
    }
    out["greedy"] = {{"prompt", req.greedy_prompt}, {"tokens", toks}};
  }
  return out;
}

}  // namespace moemesh
