// A blocking client of the attention role (the CLI, the tests, eval on the
// mesh): streamed generation, scoring, control commands.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/control_call.h"
#include "actors/transport.h"
#include "services/attention/api.h"

namespace moemesh {

class AttentionClient {
 public:
  AttentionClient(zmq::context_t& ctx, const std::string& endpoint,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(120000));

  // Streams the request's tokens to `on_update`; returns all of them with the
  // finish reason. A refused request ends with FinishReason::Error and its code;
  // throws MeshError only when the role sends nothing for `timeout`.
  TokensUpdate generate(const GenerationRequest& r, const std::function<void(const TokensUpdate&)>& on_update = {});

  struct Scores {
    std::vector<float> logits;      // [T, vocab] per sequence, in order
    std::vector<float> mtp_logits;  // [T-1, vocab] per sequence, when asked for
  };
  // Every position's logits of each sequence, scored together in one step. Throws MeshError.
  Scores score(const std::vector<std::vector<int32_t>>& sequences, bool mtp);
  Scores score(const std::vector<int32_t>& tokens, bool mtp) { return score(std::vector<std::vector<int32_t>>{tokens}, mtp); }

  nlohmann::json command(const AttentionCommand& c);
  nlohmann::json stats() { return command(AttentionCommand{}); }

 private:
  RequestChannel channel_;
  std::chrono::milliseconds timeout_;
};

}  // namespace moemesh
