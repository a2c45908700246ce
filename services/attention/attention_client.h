// A blocking client of the attention role (the CLI, the tests, the gateway):
// streamed generation, scoring, and control commands to any role.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/transport.h"
#include "services/attention/generate_protocol.h"

namespace moemesh {

class MeshError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AttentionClient {
 public:
  AttentionClient(zmq::context_t& ctx, const std::string& endpoint,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(120000));

  // Streams the request's tokens to `on_update`; returns all of them with the
  // finish reason. Throws MeshError when the request is refused or times out.
  TokensUpdate generate(const GenerationRequest& r, const std::function<void(const TokensUpdate&)>& on_update = {});

  struct Scores {
    std::vector<float> logits;      // [T, vocab] per sequence, in order
    std::vector<float> mtp_logits;  // [T-1, vocab] per sequence, when asked for
  };
  // Every position's logits of each sequence, scored together in one step.
  Scores score(const std::vector<std::vector<int32_t>>& sequences, bool mtp);
  Scores score(const std::vector<int32_t>& tokens, bool mtp) { return score(std::vector<std::vector<int32_t>>{tokens}, mtp); }

 private:
  RequestChannel channel_;
  std::chrono::milliseconds timeout_;
};

// Sends a Control command to any role and returns its JSON answer.
nlohmann::json control_call(zmq::context_t& ctx, const std::string& endpoint, const nlohmann::json& command,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

}  // namespace moemesh
