// The text of one generation as its client sees it: tokens decoded as they
// arrive (whole UTF-8 characters), cut at the first stop string, nothing after
// it. The HTTP routes and the WebSocket chat both use it, so the same
// parameters give the same text on either.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tokenizer/streaming_decoder.h"

namespace moemesh {

class TextStream {
 public:
  TextStream(std::shared_ptr<const tok::Tokenizer> tk, std::vector<std::string> stop);

  // The new text of `tokens` (ids outside the vocabulary are skipped). Text
  // that could be the start of a stop string is held back until it is not (or
  // the end); once a stop string appears, the text ends just before it.
  std::string push(const std::vector<int32_t>& tokens);
  // At the end: what the decoder still holds (nothing after a stop).
  std::string finish();
  // A stop string was seen: the caller cancels the generation.
  bool stopped() const { return stopped_; }

 private:
  std::string cut(std::string delta);  // delta up to a stop string, if one completes in it
  std::shared_ptr<const tok::Tokenizer> tk_;
  tok::StreamingDecoder decoder_;
  std::vector<std::string> stop_;
  std::string text_;   // all text so far, kept only with stop strings (they may span pieces)
  size_t emitted_ = 0;  // of text_, given out; the rest could still begin a stop string
  bool stopped_ = false;
};

}  // namespace moemesh
