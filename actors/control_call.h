// Calling another role and hearing why it refused: MeshError carries the wire
// error code (docs/WIRE.md), so callers decide on codes, never on message text.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/wire_message.h"

namespace moemesh {

class MeshError : public std::runtime_error {
 public:
  MeshError(wire::ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  wire::ErrorCode code() const { return code_; }

 private:
  wire::ErrorCode code_;
};

// The MeshError an Error message stands for (its text and `aux` code).
MeshError error_of(const wire::Message& m);

// Sends a Control command to any role and returns its JSON answer; throws
// MeshError (Timeout when it does not answer in time).
// `kind`: the role at `endpoint`, for CURVE (actors/curve.h).
nlohmann::json control_call(zmq::context_t& ctx, const std::string& endpoint, const nlohmann::json& command,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(10000), const std::string& kind = "");

}  // namespace moemesh
