// Writes random-weight checkpoints in the Hugging Face layout (config.json,
// sharded safetensors + index) for tests, benchmarks and the demo. Deterministic
// for a seed; scaled so activations stay finite and routing varies per token.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/model_config.h"

namespace moemesh {

struct MakeModelOptions {
  std::string preset = "tiny";
  bool fp8 = false;
  uint64_t seed = 1;
  int64_t shard_bytes = int64_t{1} << 30;
  // Overrides of the preset (0: keep).
  int64_t layers = 0;
  int64_t experts = 0;
  int64_t vocab = 0;
};

std::vector<std::string> model_presets();
// Throws std::invalid_argument for an unknown preset.
ModelConfig preset_config(const std::string& name);

// Writes the checkpoint into `out` (created if needed); returns its config.
ModelConfig make_model(const MakeModelOptions& opts, const std::filesystem::path& out);

// Dequantizes every fp8 weight of `in` into `out` as bf16 or f32 (the fp8 model's twin).
void dequantize_checkpoint(const std::filesystem::path& in, const std::filesystem::path& out, DType dtype);

}  // namespace moemesh
