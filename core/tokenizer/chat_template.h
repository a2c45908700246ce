// DeepSeek-V3's chat template, rendered natively: byte-identical to the Jinja
// template in its tokenizer_config.json (quirks included).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/tokenizer/tokenizer.h"

namespace moemesh::tok {

class ChatTemplate {
 public:
  // The template of `tok`; throws TokenizerError when it is not one we render.
  static ChatTemplate for_tokenizer(const Tokenizer& tok);
  static ChatTemplate deepseek_v3(std::string bos_token);

  // messages: [{"role": "system"|"user"|"assistant"|"tool", "content": string|null,
  //             "tool_calls": [{"type", "function": {"name", "arguments": string}}]}].
  // Throws TokenizerError naming the message and field on malformed input.
  std::string render(const nlohmann::json& messages, bool add_generation_prompt) const;

  // The Jinja source this renderer reproduces.
  static const std::string& deepseek_v3_source();

 private:
  explicit ChatTemplate(std::string bos) : bos_(std::move(bos)) {}
  std::string bos_;
};

}  // namespace moemesh::tok
