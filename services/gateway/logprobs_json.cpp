#include "logprobs_json.h"

namespace moemesh {

namespace {
nlohmann::json empty_object(bool chat) {
  if (chat) return {{"content", nlohmann::json::array()}};
  return {{"tokens", nlohmann::json::array()},
          {"token_logprobs", nlohmann::json::array()},
          {"top_logprobs", nlohmann::json::array()},
          {"text_offset", nlohmann::json::array()}};
}
}  // namespace

LogprobsJson::LogprobsJson(std::shared_ptr<const tok::Tokenizer> tk, bool chat)
    : tk_(std::move(tk)), chat_(chat), all_(empty_object(chat)) {}

nlohmann::json LogprobsJson::entry(int32_t id, float logprob) const {
  const std::string text = id >= 0 && id < static_cast<int32_t>(tk_->vocab_size()) ? tk_->token_bytes(id) : std::string();
  nlohmann::json bytes = nlohmann::json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  // A token can be part of a character: `token` then has U+FFFD where `bytes` has the truth.
  return {{"token", text}, {"logprob", logprob}, {"bytes", std::move(bytes)}};
}

nlohmann::json LogprobsJson::add(std::span<const int32_t> tokens, std::span<const cpu::TokenLogprobs> lp) {
  nlohmann::json part = empty_object(chat_);
  for (size_t i = 0; i < tokens.size() && i < lp.size(); ++i) {
    nlohmann::json e = entry(tokens[i], lp[i].logprob);
    if (chat_) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& [id, l] : lp[i].top) top.push_back(entry(id, l));
      e["top_logprobs"] = std::move(top);
      part["content"].push_back(e);
      all_["content"].push_back(std::move(e));
      continue;
    }
    nlohmann::json top = nlohmann::json::object();
    for (const auto& [id, l] : lp[i].top) top[entry(id, l)["token"].get<std::string>()] = l;
    const std::string text = e["token"];
    for (auto* o : {&part, &all_}) {
      (*o)["tokens"].push_back(text);
      (*o)["token_logprobs"].push_back(lp[i].logprob);
      (*o)["top_logprobs"].push_back(top);
      (*o)["text_offset"].push_back(offset_);
    }
    offset_ += static_cast<int64_t>(text.size());
  }
  return part;
}

}  // namespace moemesh
