// The body of POST /v1/chat/completions and /v1/completions as the gateway
// handles it, apart from the connection: JSON, then the OpenAI fields.
#pragma once

#include <string_view>

#include "openai_api.h"

namespace moemesh {

// `tpl` null: the model has no chat template. Throws ApiError (400) for a body
// that is not JSON, a chat request without a template, or any field refused.
ApiRequest parse_generation_body(std::string_view body, bool chat, const tok::Tokenizer& tk, const tok::ChatTemplate* tpl,
                                 const ApiLimits& limits);

}  // namespace moemesh
