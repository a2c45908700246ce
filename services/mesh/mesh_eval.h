// The eval protocol (docs/EVAL.md) answered by a running mesh: each sequence
// scored by the attention role (MTP logits from the mtp-draft role), the greedy
// continuation generated through it. Same JSON as run_eval on one engine.
#pragma once

#include <nlohmann/json.hpp>

#include "model/eval.h"
#include "services/attention/client.h"

namespace moemesh {

nlohmann::json run_eval_on_mesh(AttentionClient& client, const EvalRequest& req, int64_t vocab, bool mtp);

}  // namespace moemesh
