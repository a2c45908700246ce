#pragma once

#include <stdexcept>

namespace moemesh::tok {

// Bad tokenizer files or input the tokenizer refuses (such as invalid UTF-8).
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace moemesh::tok
