// Fetches a layer's tensors from a checkpoint with their expected shapes.
#pragma once

#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/safetensors.h"

namespace moemesh {

// `<prefix>.weight` as [out, in]; fp8 weights also need `<prefix>.weight_scale_inv`.
LinearWeight load_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t out, int64_t in);

// A 1-D float tensor (norm weights, biases) converted to f32.
std::vector<float> load_vector(const Checkpoint& ckpt, const std::string& name, int64_t n);

// "model.layers.<layer>."
std::string layer_prefix(int64_t layer);

}  // namespace moemesh
