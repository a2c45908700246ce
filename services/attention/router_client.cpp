#include "services/attention/router_client.h"

#include <cstring>

namespace moemesh {

RouterClient::RouterClient(zmq::context_t& ctx, const std::string& router, int64_t hidden, WireActivations wire,
                           std::chrono::milliseconds timeout)
    : channel_(ctx, router), hidden_(hidden), wire_(wire), timeout_(timeout) {}

void RouterClient::routed(int64_t layer, const float* x, int64_t tokens, float* out) {
  begin(layer, x, tokens);
  end(out);
}

void RouterClient::begin(int64_t layer, const float* x, int64_t tokens) {
  wire::Message m;
  m.header.type = wire::MsgType::MoeRequest;
  m.header.request_id = request_ = channel_.next_id();
  m.header.layer = static_cast<int32_t>(layer);
  m.header.rank = 2;
  m.header.shape = {static_cast<uint32_t>(tokens), static_cast<uint32_t>(hidden_), 0, 0};
  if (wire_ == WireActivations::F32) {
    m.header.dtype = DType::F32;
    m.add_payload(x, tokens * hidden_ * 4);
  } else {
    // fp8 is a dispatch option (router → hosts); attention ↔ router carries bf16.
    m.header.dtype = DType::BF16;
    std::vector<uint16_t> b(tokens * hidden_);
    for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_bf16(x[i]);
    m.add_payload(b);
  }
  tokens_ = tokens;
  layer_ = layer;
  channel_.send(std::move(m));
  sent_ = true;
}

void RouterClient::end(float* out) {
  if (!sent_) throw std::logic_error("RouterClient::end without begin");
  sent_ = false;
  auto r = channel_.wait(request_, timeout_);
  if (!r) {
    channel_.reconnect();
    throw MoeDispatchError("layer " + std::to_string(layer_) + ": the router did not answer within " +
                           std::to_string(timeout_.count()) + " ms");
  }
  const wire::Header& h = r->header;
  if (h.type == wire::MsgType::Error)
    throw MoeDispatchError(r->payloads.empty() ? "router error" : std::string(r->payload_as<char>(0), r->payload_size(0)));
  if (h.type != wire::MsgType::MoeResponse || h.rank != 2 || h.shape[0] != tokens_ || h.shape[1] != hidden_ || r->payloads.size() != 1)
    throw MoeDispatchError("layer " + std::to_string(layer_) + ": malformed MoeResponse from the router");
  const size_t n = static_cast<size_t>(tokens_ * hidden_);
  if (h.dtype == DType::F32 && r->payload_size(0) == n * 4) {
    std::memcpy(out, r->payload_as<float>(0), n * 4);
  } else if (h.dtype == DType::BF16 && r->payload_size(0) == n * 2) {
    const auto* b = r->payload_as<uint16_t>(0);
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(b[i]);
  } else {
    throw MoeDispatchError("layer " + std::to_string(layer_) + ": MoeResponse has the wrong dtype or size");
  }
}

}  // namespace moemesh
