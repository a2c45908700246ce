// Turns generated ids into text as soon as it is complete: never emits half a
// UTF-8 character, holds back the bytes of a character split across tokens.
#pragma once

#include <memory>
#include <string>

#include "core/tokenizer/tokenizer.h"

namespace moemesh::tok {

class StreamingDecoder {
 public:
  explicit StreamingDecoder(std::shared_ptr<const Tokenizer> tok, bool skip_special_tokens = true)
      : tok_(std::move(tok)), skip_special_(skip_special_tokens) {}
  // Text completed by this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is left at the end (an unfinished character becomes U+FFFD).
  std::string finish();

 private:
  std::shared_ptr<const Tokenizer> tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace moemesh::tok
