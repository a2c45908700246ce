// The client side of the attention role's Generate/Tokens messages (docs/WIRE.md):
// a generation request as JSON and the token events sent back.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/scheduler.h"

namespace moemesh {

// {"prompt": [ids], "max_tokens": n, "stop": [ids], "temperature": t, "top_k": k, "top_p": p, "seed": s}
nlohmann::json generate_request_json(const GenerationRequest& r);
// Throws std::invalid_argument naming the field.
GenerationRequest parse_generate_request(const nlohmann::json& j);

struct TokensUpdate {
  std::vector<int32_t> tokens;
  std::string finish;  // empty while running; stop, length, cancelled, error
  std::string error;
};

}  // namespace moemesh
