#include "generation_body.h"

namespace moemesh {

ApiRequest parse_generation_body(std::string_view body, bool chat, const tok::Tokenizer& tk, const tok::ChatTemplate* tpl,
                                 const ApiLimits& limits) {
  nlohmann::json j;
  try {
    j = parse_request_json(body);
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  const nlohmann::ordered_json ordered = j.is_object() && (j.contains("response_format") || j.contains("tools")) ? request_in_order(body) : nullptr;
  if (!chat) return parse_completion_request(j, tk, limits, ordered);
  if (!tpl) throw ApiError(400, "this model has no chat template: use /v1/completions");
  return parse_chat_request(j, tk, *tpl, limits, ordered);
}

}  // namespace moemesh
