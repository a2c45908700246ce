#include "text_stream.h"

#include <algorithm>

namespace moemesh {

TextStream::TextStream(std::shared_ptr<const tok::Tokenizer> tk, std::vector<std::string> stop)
    : tk_(tk), decoder_(std::move(tk)), stop_(std::move(stop)) {}

std::string TextStream::push(const std::vector<int32_t>& tokens) {
  if (stopped_) return {};
  std::string delta;
  for (int32_t t : tokens)
    if (t >= 0 && t < static_cast<int32_t>(tk_->vocab_size())) delta += decoder_.push(t);
  return cut(std::move(delta));
}

std::string TextStream::finish() {
  if (stopped_) return {};
  std::string out = cut(decoder_.finish());
  if (stopped_) return out;
  // No stop string can complete any more: what was held back goes out.
  out += text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

std::string TextStream::cut(std::string delta) {
  if (stop_.empty()) return delta;
  text_ += delta;
  size_t at = std::string::npos;
  for (const auto& s : stop_) {
    // A match ends in the new text and starts no earlier than what was held back.
    const size_t from = emitted_ >= s.size() ? emitted_ - s.size() + 1 : 0;
    at = std::min(at, text_.find(s, from));
  }
  if (at != std::string::npos) {
    stopped_ = true;
    std::string out = text_.substr(emitted_, at - emitted_);
    text_.resize(at);
    emitted_ = at;
    return out;
  }
  // Hold back the longest end of the text that could begin a stop string, so
  // no part of a stop string is ever sent.
  size_t hold = 0;
  for (const auto& s : stop_)
    for (size_t k = std::min(s.size() - 1, text_.size()); k > hold; --k)
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  const size_t upto = std::max(emitted_, text_.size() - hold);
  std::string out = text_.substr(emitted_, upto - emitted_);
  emitted_ = upto;
  return out;
}

}  // namespace moemesh
