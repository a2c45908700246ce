// Text files as the commands read them (perplexity, the benchmarks' prompts).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moemesh::cli {

// The token ids of a UTF-8 text file (no special tokens added); throws naming
// the file when it cannot be read.
std::vector<int32_t> tokenize_file(const std::string& file, const std::string& tokenizer_dir);

}  // namespace moemesh::cli
