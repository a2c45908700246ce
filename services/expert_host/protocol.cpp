// The Dispatch and Combine codecs (api.h), used by the host and by dispatchers.
#include <cmath>
#include <string>

#include "services/expert_host/api.h"

namespace moemesh {

wire::Message encode_dispatch(uint64_t request_id, int32_t layer, uint64_t table_version, const float* x, int64_t rows,
                              int64_t hidden, const std::vector<int32_t>& experts, const std::vector<float>& weights,
                              int64_t top_k, WireActivations encoding) {
  wire::Message m;
  m.header.type = wire::MsgType::Dispatch;
  m.header.request_id = request_id;
  m.header.sequence = table_version;
  m.header.layer = layer;
  m.header.aux = static_cast<uint32_t>(top_k);
  wire::put_activations(m, x, rows, hidden, encoding);
  m.add_payload(experts);
  m.add_payload(weights);
  return m;
}

DispatchView decode_dispatch(const wire::Message& m, int64_t hidden, int64_t n_experts) {
  using wire::ErrorCode;
  using wire::WireError;
  const wire::Header& h = m.header;
  if (h.type != wire::MsgType::Dispatch) throw WireError(ErrorCode::Unsupported, "not a Dispatch");
  DispatchView d;
  d.layer = h.layer;
  d.top_k = h.aux;
  d.table_version = h.sequence;
  const size_t routing = wire::activation_frames(m);
  if (d.top_k < 1 || d.top_k > n_experts) throw WireError(ErrorCode::BadFrame, "dispatch: top_k (aux) must be 1.." + std::to_string(n_experts));
  if (m.payloads.size() != routing + 2) throw WireError(ErrorCode::BadFrame, "dispatch: activations, experts and weights frames expected");
  d.x = wire::get_activations(m, hidden);
  d.rows = h.shape[0];
  const size_t slots = static_cast<size_t>(d.rows * d.top_k);
  if (m.payload_size(routing) != slots * 4 || m.payload_size(routing + 1) != slots * 4)
    throw WireError(ErrorCode::BadFrame, "dispatch: routing frames must be int32 and f32 [rows, top_k]");
  d.experts = m.payload_as<int32_t>(routing);
  d.weights = m.payload_as<float>(routing + 1);
  for (size_t i = 0; i < slots; ++i) {
    if (d.experts[i] != -1 && (d.experts[i] < 0 || d.experts[i] >= n_experts))
      throw WireError(ErrorCode::BadFrame, "dispatch: expert id " + std::to_string(d.experts[i]) + " out of range");
    if (!std::isfinite(d.weights[i])) throw WireError(ErrorCode::BadFrame, "dispatch: routing weight is not finite");
  }
  return d;
}

WireActivations combine_encoding(WireActivations dispatched_as) {
  return dispatched_as == WireActivations::F32 ? WireActivations::F32 : WireActivations::BF16;
}

wire::Message encode_combine(uint64_t request_id, int32_t layer, const float* y, int64_t rows, int64_t hidden,
                             WireActivations dispatched_as) {
  wire::Message out;
  out.header.type = wire::MsgType::Combine;
  out.header.request_id = request_id;
  out.header.layer = layer;
  wire::put_activations(out, y, rows, hidden, combine_encoding(dispatched_as));
  return out;
}

}  // namespace moemesh
