// The gateway put together: its client of the attention replicas, the model's
// tokenizer and end-of-sequence id, the HTTP server (api.h).
#include <filesystem>

#include "core/model_config.h"
#include "core/tokenizer/tokenizer.h"
#include "gateway.h"
#include "generation_client.h"
#include "services/gateway/api.h"

namespace moemesh {

int http_status_for(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::BadFrame:
    case wire::ErrorCode::TooLarge: return 400;  // the request itself is at fault
    case wire::ErrorCode::Overloaded: return 429;
    case wire::ErrorCode::ShuttingDown:
    case wire::ErrorCode::NoReplica: return 503;  // the mesh cannot serve it now; later may succeed
    case wire::ErrorCode::Forbidden: return 500;  // the gateway's own key was refused: the operator's to fix
    case wire::ErrorCode::Timeout: return 504;
    default: return 500;
  }
}

namespace {
GatewayUpstream checked(GatewayUpstream u) {
  if (u.attention.empty() && u.router.empty())
    throw std::invalid_argument("the gateway needs attention endpoints or a router to find replicas through");
  return u;
}
}  // namespace

struct GatewayService::Impl {
  GatewayOptions opts;
  GenerationClient client;
  Gateway gateway;
  Impl(GatewayOptions o, const std::string& model, GatewayUpstream upstream, zmq::context_t& ctx)
      : opts(named(std::move(o), model)),
        client(ctx, std::move(upstream), replica_routing(opts)),
        gateway(opts, tok::Tokenizer::load(model), client, {static_cast<int32_t>(ModelConfig::load(model).eos_token_id)}) {}
  static GatewayOptions named(GatewayOptions o, const std::string& model) {
    if (o.model_name.empty()) o.model_name = std::filesystem::path(model).filename().string();
    if (o.model_name.empty()) o.model_name = "moemesh";
    if (o.max_model_len <= 0) o.max_model_len = ModelConfig::load(model).max_position_embeddings;
    return o;
  }
};

GatewayService::GatewayService(GatewayOptions opts, const std::string& model, GatewayUpstream upstream, zmq::context_t& ctx)
    : impl_(std::make_unique<Impl>(std::move(opts), model, checked(std::move(upstream)), ctx)) {}

GatewayService::~GatewayService() { stop(); }

uint16_t GatewayService::start() {
  const uint16_t port = impl_->gateway.start();
  impl_->gateway.set_ready(true);
  return port;
}

bool GatewayService::drain(std::chrono::milliseconds deadline) { return impl_->gateway.drain(deadline); }

void GatewayService::stop() { impl_->gateway.stop(); }

const GatewayOptions& GatewayService::options() const { return impl_->opts; }

}  // namespace moemesh
