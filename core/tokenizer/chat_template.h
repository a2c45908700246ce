// DeepSeek-V3's chat template and DeepSeek-R1's (V3's, with the reasoning of
// earlier assistant turns cut off and the generation prompt opening a think
// block), rendered natively: byte-identical to the Jinja templates in their
// tokenizer_config.json (quirks included).
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
  static ChatTemplate deepseek_r1(std::string bos_token);

  // messages: [{"role": "system"|"user"|"assistant"|"tool", "content": string|null,
  //             "tool_calls": [{"type", "function": {"name", "arguments": string}}]}].
  // Throws TokenizerError naming the message and field on malformed input.
  std::string render(const nlohmann::json& messages, bool add_generation_prompt) const;

  // R1's: the generation prompt ends inside a think block the model closes.
  bool opens_think() const { return r1_; }

  // The Jinja sources this renderer reproduces.
  static const std::string& deepseek_v3_source();
  static const std::string& deepseek_r1_source();

 private:
  ChatTemplate(std::string bos, bool r1) : bos_(std::move(bos)), r1_(r1) {}
  std::string bos_;
  bool r1_ = false;
};

}  // namespace moemesh::tok
