#include "text_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/tokenizer/tokenizer.h"

namespace moemesh::cli {

std::vector<int32_t> tokenize_file(const std::string& file, const std::string& tokenizer_dir) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + file);
  std::stringstream ss;
  ss << in.rdbuf();
  return tok::Tokenizer::load(tokenizer_dir)->encode(ss.str(), /*add_special_tokens=*/false);
}

}  // namespace moemesh::cli
