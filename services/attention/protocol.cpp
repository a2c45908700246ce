// The codecs of the attention role's messages (api.h): every field checked, so
// a bad message is refused naming the field.
#include <algorithm>
#include <stdexcept>

#include "services/attention/api.h"

namespace moemesh {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

std::vector<int32_t> ids_of(const nlohmann::json& j, const char* field) {
  if (!j.is_array()) bad(std::string(field) + " must be an array of token ids");
  std::vector<int32_t> out;
  out.reserve(j.size());
  for (const auto& v : j) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      bad(std::string(field) + " holds an invalid token id " + v.dump());
    out.push_back(v.get<int32_t>());
  }
  return out;
}

std::optional<wire::ErrorCode> error_code_from_name(const std::string& s) {
  for (uint32_t c = 0; c <= wire::kMaxErrorCode; ++c)
    if (s == wire::error_code_name(static_cast<wire::ErrorCode>(c))) return static_cast<wire::ErrorCode>(c);
  return std::nullopt;
}

}  // namespace

nlohmann::json to_json(const GenerationRequest& r) {
  nlohmann::json j{{"prompt", r.prompt}, {"max_tokens", r.max_new_tokens}, {"stop", r.stop_ids},
                   {"temperature", r.sampling.temperature}, {"top_k", r.sampling.top_k}, {"top_p", r.sampling.top_p},
                   {"seed", r.sampling.seed}};
  if (r.top_logprobs >= 0) j["top_logprobs"] = r.top_logprobs;
  if (r.min_tokens > 0) j["min_tokens"] = r.min_tokens;
  if (!r.grammar.empty()) j["grammar"] = r.grammar;
  if (r.resumed > 0) j["resumed"] = r.resumed;
  if (r.sampling.min_p > 0.0f) j["min_p"] = r.sampling.min_p;
  const auto& a = r.adjust;
  if (a.presence_penalty != 0.0f) j["presence_penalty"] = a.presence_penalty;
  if (a.frequency_penalty != 0.0f) j["frequency_penalty"] = a.frequency_penalty;
  if (a.repetition_penalty != 1.0f) j["repetition_penalty"] = a.repetition_penalty;
  if (!a.logit_bias.empty()) {
    nlohmann::json b = nlohmann::json::array();
    for (const auto& [id, v] : a.logit_bias) b.push_back({id, v});
    j["logit_bias"] = std::move(b);
  }
  return j;
}

GenerationRequest generation_request_from_json(const nlohmann::json& j) {
  if (!j.is_object()) bad("a generate request must be a JSON object");
  static const char* known[] = {"prompt", "max_tokens", "stop", "temperature", "top_k", "top_p", "seed", "top_logprobs", "min_tokens",
                                "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "grammar", "resumed"};
  for (const auto& [k, v] : j.items())
    if (std::find(std::begin(known), std::end(known), k) == std::end(known)) bad("a generate request has no field '" + k + "'");
  GenerationRequest r;
  if (!j.contains("prompt")) bad("prompt is missing");
  r.prompt = ids_of(j["prompt"], "prompt");
  if (j.contains("stop")) r.stop_ids = ids_of(j["stop"], "stop");
  auto num = [&](const char* f, auto& out) {
    if (!j.contains(f)) return;
    if (!j[f].is_number()) bad(std::string(f) + " must be a number");
    out = j[f].get<std::decay_t<decltype(out)>>();
  };
  num("max_tokens", r.max_new_tokens);
  if (j.contains("min_tokens")) {
    if (!j["min_tokens"].is_number_integer() || j["min_tokens"].get<int64_t>() < 0) bad("min_tokens must be a non-negative integer");
    r.min_tokens = j["min_tokens"].get<int64_t>();
  }
  if (j.contains("top_logprobs")) {
    if (!j["top_logprobs"].is_number_integer() || j["top_logprobs"].get<int64_t>() < 0 ||
        j["top_logprobs"].get<int64_t>() > kMaxTopLogprobs)
      bad("top_logprobs must be an integer between 0 and " + std::to_string(kMaxTopLogprobs));
    r.top_logprobs = j["top_logprobs"].get<int>();
  }
  num("temperature", r.sampling.temperature);
  num("top_k", r.sampling.top_k);
  num("top_p", r.sampling.top_p);
  num("seed", r.sampling.seed);
  num("min_p", r.sampling.min_p);
  if (j.contains("resumed")) {
    if (!j["resumed"].is_number_integer() || j["resumed"].get<int64_t>() < 0) bad("resumed must be a non-negative integer");
    r.resumed = j["resumed"].get<int64_t>();
  }
  if (j.contains("grammar")) {
    if (!j["grammar"].is_string() || j["grammar"].get_ref<const std::string&>().empty()) bad("grammar must be grammar text");
    r.grammar = j["grammar"];
  }
  num("presence_penalty", r.adjust.presence_penalty);
  num("frequency_penalty", r.adjust.frequency_penalty);
  num("repetition_penalty", r.adjust.repetition_penalty);
  if (j.contains("logit_bias")) {
    const auto& b = j["logit_bias"];
    if (!b.is_array() || b.size() > kMaxLogitBias) bad("logit_bias must be an array of at most " + std::to_string(kMaxLogitBias) + " [id, bias] pairs");
    for (const auto& e : b) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number()) bad("logit_bias entries must be [id, bias]");
      const int64_t id = e[0].get<int64_t>();
      if (id < 0 || id > INT32_MAX) bad("logit_bias ids must be token ids");
      r.adjust.logit_bias.emplace_back(static_cast<int32_t>(id), e[1].get<float>());
    }
  }
  if (r.sampling.temperature < 0 || r.sampling.top_p <= 0 || r.sampling.top_p > 1 || r.sampling.top_k < 0)
    bad("sampling parameters out of range (temperature >= 0, 0 < top_p <= 1, top_k >= 0)");
  return r;
}

std::optional<FinishReason> finish_reason_from_name(const std::string& s) {
  for (FinishReason r : {FinishReason::None, FinishReason::Stop, FinishReason::Length, FinishReason::Cancelled, FinishReason::Error})
    if (s == (r == FinishReason::None ? "" : finish_reason_name(r))) return r;
  return std::nullopt;
}

nlohmann::json to_json(const TokensUpdate& u) {
  nlohmann::json j{{"tokens", u.tokens}};
  if (u.finished()) j["finish"] = finish_reason_name(u.finish);
  if (!u.error.empty()) j["error"] = u.error;
  if (u.code != wire::ErrorCode::None) j["code"] = wire::error_code_name(u.code);
  if (u.cached_tokens > 0) j["cached_tokens"] = u.cached_tokens;
  if (!u.logprobs.empty()) {
    nlohmann::json lp = nlohmann::json::array();
    for (const auto& t : u.logprobs) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& [id, l] : t.top) top.push_back({id, l});
      lp.push_back({t.logprob, top});
    }
    j["logprobs"] = std::move(lp);
  }
  return j;
}

TokensUpdate tokens_update_from_json(const nlohmann::json& j) {
  if (!j.is_object()) bad("a Tokens update must be a JSON object");
  TokensUpdate u;
  if (!j.contains("tokens")) bad("a Tokens update needs \"tokens\"");
  u.tokens = ids_of(j["tokens"], "tokens");
  if (j.contains("finish")) {
    if (!j["finish"].is_string()) bad("finish must be a string");
    const auto f = finish_reason_from_name(j["finish"].get<std::string>());
    if (!f) bad("finish must be stop, length, cancelled or error, not " + j["finish"].dump());
    u.finish = *f;
  }
  if (j.contains("error")) {
    if (!j["error"].is_string()) bad("error must be a string");
    u.error = j["error"];
  }
  if (j.contains("code")) {
    const auto c = j["code"].is_string() ? error_code_from_name(j["code"].get<std::string>()) : std::nullopt;
    u.code = c.value_or(wire::ErrorCode::Failed);  // a code this side does not know: a failure
  }
  if (j.contains("logprobs")) {
    const auto& lp = j["logprobs"];
    if (!lp.is_array() || lp.size() != u.tokens.size()) bad("logprobs must be an array with one entry per token");
    for (const auto& e : lp) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_number() || !e[1].is_array() || e[1].size() > kMaxTopLogprobs)
        bad("a logprobs entry must be [logprob, [[id, logprob], ...]]");
      cpu::TokenLogprobs t;
      t.logprob = e[0].get<float>();
      for (const auto& p : e[1]) {
        if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || p[0].get<int64_t>() < 0 ||
            p[0].get<int64_t>() > INT32_MAX || !p[1].is_number())
          bad("a top logprob must be [token id, logprob]");
        t.top.emplace_back(p[0].get<int32_t>(), p[1].get<float>());
      }
      u.logprobs.push_back(std::move(t));
    }
  }
  if (j.contains("cached_tokens")) {
    if (!j["cached_tokens"].is_number_integer() || j["cached_tokens"].get<int64_t>() < 0)
      bad("cached_tokens must be a non-negative integer");
    u.cached_tokens = j["cached_tokens"].get<int64_t>();
  }
  if (u.finish == FinishReason::Error && u.code == wire::ErrorCode::None) u.code = wire::ErrorCode::Failed;
  return u;
}

TokensUpdate tokens_update_from_error(const wire::Message& m) {
  TokensUpdate u;
  u.finish = FinishReason::Error;
  u.error = m.payloads.empty() ? "error" : std::string(m.payload_as<char>(0), m.payload_size(0));
  const uint32_t c = m.header.aux;
  u.code = c >= 1 && c <= wire::kMaxErrorCode ? static_cast<wire::ErrorCode>(c) : wire::ErrorCode::Failed;
  return u;
}

wire::Message encode_score(uint64_t request_id, const ScoreRequest& r) {
  std::vector<int32_t> tokens, lengths;
  for (const auto& s : r.sequences) {
    tokens.insert(tokens.end(), s.begin(), s.end());
    lengths.push_back(static_cast<int32_t>(s.size()));
  }
  wire::Message m;
  m.header.type = wire::MsgType::Score;
  m.header.request_id = request_id;
  m.header.aux = r.mtp ? 1 : 0;
  m.add_payload(tokens);
  m.add_payload(lengths);
  return m;
}

ScoreRequest decode_score(const wire::Message& m) {
  using wire::WireError;
  const auto refuse = [](const std::string& what) { return WireError(wire::ErrorCode::BadFrame, "attention: " + what); };
  if (m.payloads.empty() || m.payloads.size() > 2 || m.payload_size(0) == 0 || m.payload_size(0) % 4 != 0)
    throw refuse("Score needs int32 token ids (and optionally int32 sequence lengths)");
  if (m.header.aux > 1) throw refuse("Score's aux is 0 or 1 (MTP logits)");
  const auto* p = m.payload_as<int32_t>(0);
  const std::vector<int32_t> tokens(p, p + m.payload_size(0) / 4);
  std::vector<int32_t> lengths{static_cast<int32_t>(tokens.size())};
  if (m.payloads.size() == 2) {
    if (m.payload_size(1) == 0 || m.payload_size(1) % 4 != 0 || m.payload_size(1) / 4 > kMaxScoreSequences)
      throw refuse("Score lengths must be 1.." + std::to_string(kMaxScoreSequences) + " int32 values");
    lengths.assign(m.payload_as<int32_t>(1), m.payload_as<int32_t>(1) + m.payload_size(1) / 4);
  }
  ScoreRequest r;
  r.mtp = m.header.aux & 1;
  size_t at = 0;
  for (int32_t l : lengths) {
    if (l < 1) throw refuse("Score lengths must be >= 1");
    if (at + static_cast<size_t>(l) > tokens.size()) throw refuse("Score lengths do not add up to the token count");
    r.sequences.emplace_back(tokens.begin() + static_cast<long>(at), tokens.begin() + static_cast<long>(at + l));
    at += static_cast<size_t>(l);
  }
  if (at != tokens.size()) throw refuse("Score lengths do not add up to the token count");
  return r;
}

nlohmann::json to_json(const AttentionCommand& c) {
  if (c.kind == AttentionCommandKind::Cancel) return {{"cmd", "cancel"}, {"request", c.request}};
  return {{"cmd", "stats"}};
}

AttentionCommand attention_command_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("cmd") || !j["cmd"].is_string()) bad("an attention command needs \"cmd\"");
  const std::string cmd = j["cmd"];
  AttentionCommand c;
  if (cmd == "stats") {
    c.kind = AttentionCommandKind::Stats;
  } else if (cmd == "cancel") {
    c.kind = AttentionCommandKind::Cancel;
    if (!j.contains("request") || !j["request"].is_number_unsigned()) bad("cancel needs \"request\", the Generate's request id");
    c.request = j["request"];
  } else {
    bad("attention commands are cancel {request} and stats, not '" + cmd + "'");
  }
  return c;
}

}  // namespace moemesh
