// A plain, slow, independent DeepSeek-V3 forward for tests: loops over
// LinearWeight::at, double accumulation, no cache, full keys and values,
// literal transcription of the reference semantics. Latents are rounded to bf16
// as the engine's (and the reference implementation's) cache stores them.
#pragma once

#include <filesystem>
#include <vector>

namespace moemesh::testing {

struct ReferenceOutput {
  std::vector<std::vector<float>> logits;      // [n][vocab]
  std::vector<std::vector<float>> mtp_logits;  // [n-1][vocab]
};

ReferenceOutput reference_forward(const std::filesystem::path& model, const std::vector<int32_t>& tokens);

}  // namespace moemesh::testing
