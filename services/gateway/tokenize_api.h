// POST /tokenize and POST /detokenize in vLLM's shape, apart from the socket:
//   /tokenize   {"prompt": text, "add_special_tokens": true} or
//               {"messages": [...], "add_generation_prompt": true}, optional "model",
//               "return_token_strs" → {"count", "max_model_len", "tokens", ["token_strs"]}
//   /detokenize {"tokens": [ids], optional "model"} → {"prompt": text}
// Unknown fields are refused by name, like everywhere in the API.
#pragma once

#include <string_view>

#include "openai_api.h"

namespace moemesh {

// Answers with the response body; throws ApiError(400) for a bad request.
std::string tokenize_body(std::string_view body, const tok::Tokenizer& tk, const tok::ChatTemplate* tpl,
                          const ApiLimits& limits, int64_t max_model_len);
std::string detokenize_body(std::string_view body, const tok::Tokenizer& tk);

}  // namespace moemesh
