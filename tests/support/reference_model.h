// A plain, slow, independent DeepSeek-V3 forward for tests: loops over
// LinearWeight::at, double accumulation, no cache, full keys and values,
// literal transcription of the reference semantics. Latents are rounded as the
// engine's cache stores them: bf16 by default (as the reference implementation's
// cache does), not at all for the f32 cache, e4m3 with a scale per part for fp8.
#pragma once

#include <filesystem>
#include <vector>

namespace moemesh::testing {

struct ReferenceOutput {
  std::vector<std::vector<float>> logits;      // [n][vocab]
  std::vector<std::vector<float>> mtp_logits;  // [n-1][vocab]
};

enum class LatentRounding { None, Bf16, Fp8 };

ReferenceOutput reference_forward(const std::filesystem::path& model, const std::vector<int32_t>& tokens,
                                  LatentRounding latents = LatentRounding::Bf16);

}  // namespace moemesh::testing
