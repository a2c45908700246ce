// OpenAI's log-probability objects, from the attention role's per-token entries
// (the log-softmax of the model's logits, before temperature or filters):
//   chat         {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}
//   completions  {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}
// text_offset counts UTF-8 bytes of the generated text. Shared by the HTTP
// routes and the WebSocket chat.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/sampling.h"

namespace moemesh {

class LogprobsJson {
 public:
  LogprobsJson(std::shared_ptr<const tok::Tokenizer> tk, bool chat);
  // Takes the entries of `tokens` (one per token; fewer: the rest are skipped)
  // and returns the object for just these, for a stream chunk.
  nlohmann::json add(std::span<const int32_t> tokens, std::span<const cpu::TokenLogprobs> lp);
  // The object for every token so far.
  const nlohmann::json& all() const { return all_; }

 private:
  nlohmann::json entry(int32_t id, float logprob) const;
  std::shared_ptr<const tok::Tokenizer> tk_;
  bool chat_;
  int64_t offset_ = 0;
  nlohmann::json all_;
};

}  // namespace moemesh
