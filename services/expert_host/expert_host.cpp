#include "expert_host.h"

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
    : cfg_(cfg), ckpt_(ckpt), device_(device), compute_(compute), expert_rows_(cfg.n_routed_experts, 0) {
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
  std::unique_lock<std::shared_mutex> lock(swap_);
  if (device_ == "cuda") {
    gpu_.reset();  // free the old upload first: the device holds one set at a time
    std::vector<int64_t> moe_layers;
    for (const auto& [l, _] : layers) moe_layers.push_back(l);
    gpu_ = std::make_unique<GpuExperts>(cfg_, ckpt_, moe_layers, ids);
  }
  layers_.swap(layers);
  ids_ = std::move(ids);
  lock.unlock();  // the old sets are freed outside it
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

std::vector<std::pair<int32_t, uint64_t>> ExpertHost::take_expert_rows() {
  std::vector<std::pair<int32_t, uint64_t>> out;
  for (size_t e = 0; e < expert_rows_.size(); ++e)
    if (expert_rows_[e]) {
      out.emplace_back(static_cast<int32_t>(e), expert_rows_[e]);
      expert_rows_[e] = 0;
    }
  return out;
}

wire::Message ExpertHost::handle(const wire::Message& m) {
  using wire::ErrorCode;
  using wire::WireError;
  if (m.header.type != wire::MsgType::Dispatch)
    throw WireError(ErrorCode::Unsupported, "expert host: cannot handle message type " + std::to_string(static_cast<int>(m.header.type)));
  const int64_t H = cfg_.hidden_size;
  const DispatchView d = decode_dispatch(m, H, cfg_.n_routed_experts);
  std::shared_lock<std::shared_mutex> held(swap_);
  auto layer = layers_.find(d.layer);
  if (layer == layers_.end()) throw WireError(ErrorCode::BadFrame, "expert host: layer " + std::to_string(d.layer) + " has no routed experts");
  const size_t slots = static_cast<size_t>(d.rows * d.top_k);
  for (size_t i = 0; i < slots; ++i)
    if (d.experts[i] != -1 && !layer->second->has(d.experts[i]))
      throw WireError(ErrorCode::NotHeld, "expert host: expert " + std::to_string(d.experts[i]) +
                                              " is not held here (the dispatch was planned on placement table " +
                                              std::to_string(d.table_version) + ")");
  Routing r;
  r.tokens = d.rows;
  r.top_k = d.top_k;
  r.experts.assign(d.experts, d.experts + slots);
  r.weights.assign(d.weights, d.weights + slots);
  std::vector<float> y(static_cast<size_t>(d.rows * H), 0.0f);
  if (gpu_) {
    gpu_->forward(d.layer, d.x.data(), r, y.data());
  } else {
    ForwardContext ctx;
    ctx.precision = compute_;
    ctx.ws = &ws_;
    layer->second->forward(d.x.data(), r, y.data(), ctx);
  }
  ++dispatches_;
  rows_ += static_cast<uint64_t>(d.rows);
  for (int32_t e : r.experts)
    if (e >= 0) ++expert_rows_[e];
  wire::Message out = encode_combine(m.header.request_id, d.layer, y.data(), d.rows, H, wire::activation_encoding(m.header));
  out.header.sequence = m.header.sequence;
  return out;
}

}  // namespace moemesh
