// Random checkpoints for tests, made once per test process in a temp directory.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/model_config.h"

namespace moemesh::testing {

// A fresh empty directory under the system temp dir, removed at process exit.
std::filesystem::path temp_dir(const std::string& tag);

// make-model output for (preset, fp8, seed), cached for the process.
const std::filesystem::path& test_model(const std::string& preset, bool fp8 = false, uint64_t seed = 1);

// The committed trained demo checkpoint (assets/moemesh-kjv, made by tools/train).
std::filesystem::path trained_model(bool fp8 = false);

// Deterministic pseudo-random token ids in [0, vocab).
std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed);

// max |a - b| and max |a|.
struct Diff { double max_abs = 0, max_ref = 0; };
Diff compare(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace moemesh::testing
