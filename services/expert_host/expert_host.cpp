#include "services/expert_host/expert_host.h"

#include "model/engine.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace moemesh {

std::vector<int32_t> parse_id_ranges(const std::string& spec, int32_t limit) {
  std::vector<int32_t> ids;
  std::stringstream ss(spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const size_t dash = part.find('-');
    try {
      size_t used = 0;
      const int a = std::stoi(dash == std::string::npos ? part : part.substr(0, dash), &used);
      const int b = dash == std::string::npos ? a : std::stoi(part.substr(dash + 1));
      if (a < 0 || b < a || b >= limit) throw std::invalid_argument("");
      for (int i = a; i <= b; ++i) ids.push_back(i);
    } catch (const std::exception&) {
      throw std::invalid_argument("'" + part + "' is not an expert id or range within 0.." + std::to_string(limit - 1));
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.empty()) throw std::invalid_argument("no experts given");
  return ids;
}

ExpertHost::ExpertHost(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int32_t>& experts,
                       const std::string& device, cpu::Precision compute)
    : cfg_(cfg), ckpt_(ckpt), device_(device), compute_(compute) {
  reserve_kernel_scratch_for(cfg);
  if (device_ != "cpu" && device_ != "cuda")
    throw std::invalid_argument("expert host: device must be cpu or cuda, not '" + device_ + "'");
  build(experts);
}

void ExpertHost::build(std::vector<int32_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int32_t e : ids)
    if (e < 0 || e >= cfg_.n_routed_experts) throw std::invalid_argument("expert " + std::to_string(e) + " out of range");
  // Weights are memory-mapped: rebuilding the sets maps them again, nothing is copied twice.
  std::map<int64_t, std::unique_ptr<ExpertSet>> layers;
  for (int64_t l = 0; l < cfg_.num_hidden_layers + cfg_.num_nextn_predict_layers; ++l)
    if (cfg_.is_moe_layer(l) && ckpt_.has("model.layers." + std::to_string(l) + ".mlp.gate.weight"))
      layers[l] = std::make_unique<ExpertSet>(cfg_, ckpt_, l, ids);
  if (device_ == "cuda") {
    gpu_.reset();  // free the old upload first: the device holds one set at a time
    std::vector<int64_t> moe_layers;
    for (const auto& [l, _] : layers) moe_layers.push_back(l);
    gpu_ = std::make_unique<GpuExperts>(cfg_, ckpt_, moe_layers, ids);
  }
  layers_ = std::move(layers);
  ids_ = std::move(ids);
}

const std::vector<int32_t>& ExpertHost::load(const std::vector<int32_t>& experts) {
  std::vector<int32_t> ids = ids_;
  ids.insert(ids.end(), experts.begin(), experts.end());
  build(ids);
  return ids_;
}

const std::vector<int32_t>& ExpertHost::unload(const std::vector<int32_t>& experts) {
  std::vector<int32_t> ids;
  for (int32_t e : ids_)
    if (std::find(experts.begin(), experts.end(), e) == experts.end()) ids.push_back(e);
  build(ids);
  return ids_;
}

wire::Message ExpertHost::handle(const wire::Message& m) {
  using wire::ErrorCode;
  using wire::WireError;
  const wire::Header& h = m.header;
  if (h.type == wire::MsgType::Hello) {
    wire::Message r;
    r.header.type = wire::MsgType::Hello;
    r.header.request_id = h.request_id;
    const std::string hello = nlohmann::json{{"role", "expert-host"}, {"experts", ids_}}.dump();
    r.add_payload(hello.data(), hello.size());
    return r;
  }
  if (h.type != wire::MsgType::Dispatch) throw WireError(ErrorCode::Unsupported, "expert host: cannot handle message type " + std::to_string(static_cast<int>(h.type)));
  auto layer = layers_.find(h.layer);
  if (layer == layers_.end()) throw WireError(ErrorCode::BadFrame, "expert host: layer " + std::to_string(h.layer) + " has no routed experts");
  const bool fp8 = h.flags & wire::kFlagFp8Scaled;
  if (h.rank != 2 || h.shape[1] != cfg_.hidden_size) throw WireError(ErrorCode::BadFrame, "expert host: activations must be [rows, hidden]");
  if (!fp8 && h.dtype != DType::F32 && h.dtype != DType::BF16) throw WireError(ErrorCode::BadFrame, "expert host: activations must be F32, BF16 or scaled F8_E4M3");
  const int64_t rows = h.shape[0], H = cfg_.hidden_size, k = h.aux;
  const size_t routing_frame = fp8 ? 2 : 1;
  if (k < 1 || k > cfg_.n_routed_experts || m.payloads.size() != routing_frame + 2 ||
      m.payload_size(routing_frame) != static_cast<size_t>(rows * k * 4) || m.payload_size(routing_frame + 1) != static_cast<size_t>(rows * k * 4))
    throw WireError(ErrorCode::BadFrame, "expert host: routing frames must be int32 and f32 [rows, top_k]");

  std::vector<float> x(rows * H);
  if (fp8) {
    wire::dequantize_rows_fp8(m.payload_as<uint8_t>(0), m.payload_as<float>(1), rows, H, x.data());
  } else if (h.dtype == DType::F32) {
    std::memcpy(x.data(), m.payload_as<float>(0), x.size() * 4);
  } else {
    const auto* b = m.payload_as<uint16_t>(0);
    for (int64_t i = 0; i < rows * H; ++i) x[i] = bf16_to_f32(b[i]);
  }
  Routing r;
  r.tokens = rows;
  r.top_k = k;
  r.experts.assign(m.payload_as<int32_t>(routing_frame), m.payload_as<int32_t>(routing_frame) + rows * k);
  r.weights.assign(m.payload_as<float>(routing_frame + 1), m.payload_as<float>(routing_frame + 1) + rows * k);
  for (int32_t e : r.experts)
    if (e != -1 && !layer->second->has(e))
      throw WireError(ErrorCode::BadFrame, "expert host: expert " + std::to_string(e) + " is not held here");
  for (float w : r.weights)
    if (!std::isfinite(w)) throw WireError(ErrorCode::BadFrame, "expert host: routing weight is not finite");
  std::vector<float> y(rows * H, 0.0f);
  if (gpu_) gpu_->forward(h.layer, x.data(), r, y.data());
  else {
    ForwardContext ctx;
    ctx.precision = compute_;
    ctx.ws = &ws_;
    layer->second->forward(x.data(), r, y.data(), ctx);
  }
  ++dispatches_;
  rows_ += static_cast<uint64_t>(rows);

  wire::Message out;
  out.header.type = wire::MsgType::Combine;
  out.header.request_id = h.request_id;
  out.header.sequence = h.sequence;
  out.header.layer = h.layer;
  out.header.rank = 2;
  out.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(H), 0, 0};
  if (h.dtype == DType::F32 && !fp8) {
    out.header.dtype = DType::F32;
    out.add_payload(y);
  } else {
    out.header.dtype = DType::BF16;
    std::vector<uint16_t> b(y.size());
    for (size_t i = 0; i < y.size(); ++i) b[i] = f32_to_bf16(y[i]);
    out.add_payload(b);
  }
  return out;
}

}  // namespace moemesh
