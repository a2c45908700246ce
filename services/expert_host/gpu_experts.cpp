#include "gpu_experts.h"

#include <map>
#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#if MOEMESH_HAVE_CUDA
#include "kernels/cuda/expert_layer.h"
#include "model/weight_loader.h"
#endif

namespace moemesh {

#if MOEMESH_HAVE_CUDA

struct GpuExperts::Impl {
  std::map<int64_t, std::unique_ptr<cuda::ExpertLayer>> layers;
};

GpuExperts::GpuExperts(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers,
                       const std::vector<int32_t>& ids)
    : impl_(std::make_unique<Impl>()) {
  if (cuda::device_count() == 0)
    throw std::runtime_error("expert host: device cuda, but no CUDA device is visible to this process");
  size_t bytes = 0;
  for (int64_t l : layers) {
    std::vector<cuda::ExpertWeights> w;
    for (int32_t e : ids) {
      const std::string p = layer_prefix(l) + "mlp.experts." + std::to_string(e);
      w.push_back({e, load_linear(ckpt, p + ".gate_proj", cfg.moe_intermediate_size, cfg.hidden_size),
                   load_linear(ckpt, p + ".up_proj", cfg.moe_intermediate_size, cfg.hidden_size),
                   load_linear(ckpt, p + ".down_proj", cfg.hidden_size, cfg.moe_intermediate_size)});
    }
    auto layer = std::make_unique<cuda::ExpertLayer>(cfg.hidden_size, cfg.moe_intermediate_size, w);
    bytes += layer->device_bytes();
    impl_->layers[l] = std::move(layer);
  }
  spdlog::info("expert host: {} experts of {} layers on the GPU ({:.1f} MiB)", ids.size(), layers.size(),
               static_cast<double>(bytes) / (1 << 20));
}

void GpuExperts::forward(int64_t layer, const float* x, const Routing& r, float* out) const {
  impl_->layers.at(layer)->forward(x, r.tokens, r.experts.data(), r.weights.data(), r.top_k, out);
}

size_t GpuExperts::device_bytes() const {
  size_t b = 0;
  for (const auto& [l, layer] : impl_->layers) b += layer->device_bytes();
  return b;
}

#else

struct GpuExperts::Impl {};

GpuExperts::GpuExperts(const ModelConfig&, const Checkpoint&, const std::vector<int64_t>&,
                       const std::vector<int32_t>&) {
  throw std::runtime_error(
      "expert host: device cuda, but this build has no CUDA backend for expert hosts (configure with nvcc "
      "on the PATH and -DMOEMESH_CUDA_EXPERT_HOST=ON; docs/GPU.md)");
}

void GpuExperts::forward(int64_t, const float*, const Routing&, float*) const {}
size_t GpuExperts::device_bytes() const { return 0; }

#endif

GpuExperts::~GpuExperts() = default;

}  // namespace moemesh
