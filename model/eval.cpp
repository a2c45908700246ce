#include "model/eval.h"

#include <stdexcept>

#include "kernels/cpu/sampling.h"

namespace moemesh {
namespace {
std::vector<int32_t> parse_ids(const nlohmann::json& j, const std::string& field) {
  if (!j.is_array()) throw std::invalid_argument(field + " must be an array of token ids");
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (const auto& v : j) {
    if (!v.is_number_integer()) throw std::invalid_argument(field + " must contain only integers, found " + v.dump());
    const int64_t x = v.get<int64_t>();
    if (x < 0 || x > INT32_MAX) throw std::invalid_argument(field + ": token id " + std::to_string(x) + " out of range");
    ids.push_back(static_cast<int32_t>(x));
  }
  return ids;
}

std::vector<std::vector<float>> rows_of(const float* data, int64_t rows, int64_t width) {
  std::vector<std::vector<float>> out(rows);
  for (int64_t r = 0; r < rows; ++r) out[r].assign(data + r * width, data + (r + 1) * width);
  return out;
}
}  // namespace

EvalRequest EvalRequest::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("eval input must be a JSON object");
  EvalRequest r;
  if (j.contains("sequences")) {
    if (!j["sequences"].is_array()) throw std::invalid_argument("sequences must be an array of arrays");
    for (size_t i = 0; i < j["sequences"].size(); ++i) {
      r.sequences.push_back(parse_ids(j["sequences"][i], "sequences[" + std::to_string(i) + "]"));
      if (r.sequences.back().empty()) throw std::invalid_argument("sequences[" + std::to_string(i) + "] is empty");
    }
  }
  if (j.contains("greedy")) {
    const auto& g = j["greedy"];
    if (!g.is_object()) throw std::invalid_argument("greedy must be an object");
    if (!g.contains("prompt")) throw std::invalid_argument("greedy.prompt is missing");
    r.greedy_prompt = parse_ids(g["prompt"], "greedy.prompt");
    if (r.greedy_prompt.empty()) throw std::invalid_argument("greedy.prompt is empty");
    if (!g.contains("max_new_tokens") || !g["max_new_tokens"].is_number_integer() ||
        g["max_new_tokens"].get<int64_t>() < 0 || g["max_new_tokens"].get<int64_t>() > 1000000)
      throw std::invalid_argument("greedy.max_new_tokens must be an integer in 0..1000000");
    r.greedy_new_tokens = g["max_new_tokens"].get<int64_t>();
    r.has_greedy = true;
  }
  return r;
}

std::vector<int32_t> greedy_generate(Engine& engine, SeqId seq, const std::vector<int32_t>& prompt, int64_t n) {
  const int64_t V = engine.config().vocab_size;
  std::vector<int32_t> out;
  if (n == 0) return out;
  StepOutput s = engine.step({{seq, prompt, false}});
  out.push_back(cpu::argmax(s.last_logits(0, V), V));
  while (static_cast<int64_t>(out.size()) < n) {
    s = engine.step({{seq, {out.back()}, false}});
    out.push_back(cpu::argmax(s.last_logits(0, V), V));
  }
  return out;
}

nlohmann::json run_eval(Engine& engine, const EvalRequest& req) {
  const int64_t V = engine.config().vocab_size, H = engine.config().hidden_size;
  nlohmann::json out;
  out["sequences"] = nlohmann::json::array();
  // Fresh ids far from any a server would use.
  const SeqId base = 0x4556414c00000000ull;
  if (!req.sequences.empty()) {
    std::vector<StepInput> inputs;
    for (size_t i = 0; i < req.sequences.size(); ++i) inputs.push_back({base + i, req.sequences[i], true});
    StepOutput s;
    try {
      s = engine.step(inputs);
      for (size_t i = 0; i < req.sequences.size(); ++i) {
        const SeqChunk& c = s.chunks[i];
        nlohmann::json seq;
        seq["tokens"] = req.sequences[i];
        // all_logits: the chunk's rows appear in order within logit_rows.
        int64_t first = 0;
        while (s.logit_rows[first] != c.row) ++first;
        seq["logits"] = rows_of(s.logits.data() + first * V, c.len, V);
        if (engine.has_mtp()) {
          std::vector<float> ml;
          if (c.len >= 2) {
            std::vector<int32_t> next(req.sequences[i].begin() + 1, req.sequences[i].end());
            engine.mtp_step(c.seq, next, s.hidden.data() + c.row * H, &ml);
          }
          seq["mtp_logits"] = rows_of(ml.data(), c.len - 1, V);
        }
        out["sequences"].push_back(std::move(seq));
      }
    } catch (...) {
      for (size_t i = 0; i < req.sequences.size(); ++i) engine.release(base + i);
      throw;
    }
    for (size_t i = 0; i < req.sequences.size(); ++i) engine.release(base + i);
  }
  if (req.has_greedy) {
    const SeqId g = base - 1;
    std::vector<int32_t> toks;
    try {
      toks = greedy_generate(engine, g, req.greedy_prompt, req.greedy_new_tokens);
    } catch (...) {
      engine.release(g);
      throw;
    }
    engine.release(g);
    out["greedy"] = {{"prompt", req.greedy_prompt}, {"tokens", toks}};
  }
  return out;
}

}  // namespace moemesh
