// The eval protocol: every position's logits (and MTP logits) for given token
// sequences, plus a greedy continuation. See docs/EVAL.md for the JSON format.
#pragma once

#include <nlohmann/json.hpp>

#include "model/engine.h"

namespace moemesh {

struct EvalRequest {
  std::vector<std::vector<int32_t>> sequences;
  std::vector<int32_t> greedy_prompt;
  int64_t greedy_new_tokens = 0;
  bool has_greedy = false;

  // Throws std::invalid_argument naming the field on malformed input.
  static EvalRequest from_json(const nlohmann::json& j);
};

nlohmann::json run_eval(Engine& engine, const EvalRequest& req);

// Greedy continuation of a prompt: exactly `n` new tokens (EOS does not stop it).
std::vector<int32_t> greedy_generate(Engine& engine, SeqId seq, const std::vector<int32_t>& prompt, int64_t n);

}  // namespace moemesh
