#include "actors/control_call.h"

#include "actors/transport.h"

namespace moemesh {

MeshError error_of(const wire::Message& m) {
  const std::string text = m.payloads.empty() ? "error" : std::string(m.payload_as<char>(0), m.payload_size(0));
  const uint32_t code = m.header.aux;
  return MeshError(code <= wire::kMaxErrorCode ? static_cast<wire::ErrorCode>(code) : wire::ErrorCode::Failed, text);
}

nlohmann::json control_call(zmq::context_t& ctx, const std::string& endpoint, const nlohmann::json& command,
                            std::chrono::milliseconds timeout, const std::string& kind) {
  RequestChannel ch(ctx, endpoint, kind);
  const uint64_t id = ch.next_id();
  auto r = ch.call(wire::json_message(wire::MsgType::Control, id, command), timeout);
  if (!r) throw MeshError(wire::ErrorCode::Timeout, endpoint + " did not answer within " + std::to_string(timeout.count()) + " ms");
  if (r->header.type == wire::MsgType::Error) throw error_of(*r);
  return wire::json_payload(*r);
}

}  // namespace moemesh
