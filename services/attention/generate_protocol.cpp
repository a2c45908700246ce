#include "services/attention/generate_protocol.h"

#include <stdexcept>

namespace moemesh {

nlohmann::json generate_request_json(const GenerationRequest& r) {
  return {{"prompt", r.prompt}, {"max_tokens", r.max_new_tokens}, {"stop", r.stop_ids},
          {"temperature", r.sampling.temperature}, {"top_k", r.sampling.top_k}, {"top_p", r.sampling.top_p},
          {"seed", r.sampling.seed}};
}

namespace {
std::vector<int32_t> ids_of(const nlohmann::json& j, const char* field) {
  if (!j.is_array()) throw std::invalid_argument(std::string(field) + " must be an array of token ids");
  std::vector<int32_t> out;
  for (const auto& v : j) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      throw std::invalid_argument(std::string(field) + " holds an invalid token id " + v.dump());
    out.push_back(v.get<int32_t>());
  }
  return out;
}
}  // namespace

GenerationRequest parse_generate_request(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("a generate request must be a JSON object");
  GenerationRequest r;
  if (!j.contains("prompt")) throw std::invalid_argument("prompt is missing");
  r.prompt = ids_of(j["prompt"], "prompt");
  if (j.contains("stop")) r.stop_ids = ids_of(j["stop"], "stop");
  auto num = [&](const char* f, auto& out) {
    if (!j.contains(f)) return;
    if (!j[f].is_number()) throw std::invalid_argument(std::string(f) + " must be a number");
    out = j[f].get<std::decay_t<decltype(out)>>();
  };
  num("max_tokens", r.max_new_tokens);
  num("temperature", r.sampling.temperature);
  num("top_k", r.sampling.top_k);
  num("top_p", r.sampling.top_p);
  num("seed", r.sampling.seed);
  if (r.sampling.temperature < 0 || r.sampling.top_p <= 0 || r.sampling.top_p > 1 || r.sampling.top_k < 0)
    throw std::invalid_argument("sampling parameters out of range (temperature >= 0, 0 < top_p <= 1, top_k >= 0)");
  return r;
}

}  // namespace moemesh
