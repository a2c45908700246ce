#include "reasoning_parser.h"

namespace moemesh {

namespace {
constexpr std::string_view kOpen = "<think>", kClose = "</think>";

bool space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// The length of the longest end of `s` that `marker` starts with (and is shorter than it).
size_t partial_tail(std::string_view s, std::string_view marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
  return 0;
}
}  // namespace

ReasoningParser::Out ReasoningParser::push(std::string_view text) {
  Out out;
  buf_ += text;
  run(out, false);
  return out;
}

ReasoningParser::Out ReasoningParser::finish() {
  Out out;
  run(out, true);
  return out;
}

void ReasoningParser::run(Out& out, bool end) {
  for (;;) {
    switch (state_) {
      case State::Start: {
        // Leading space, then "<think>" opens the block; anything else is the
        // answer (or, when the prompt opened the block, the reasoning).
        size_t i = 0;
        while (i < buf_.size() && space(buf_[i])) ++i;
        const std::string_view rest = std::string_view(buf_).substr(i);
        if (rest.substr(0, kOpen.size()) == kOpen) {
          buf_.erase(0, i + kOpen.size());
          state_ = State::Think;
          continue;
        }
        const bool maybe = rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest;
        if (maybe && !end) return;
        state_ = opened_ ? State::Think : State::Content;
        continue;
      }
      case State::Think: {
        const size_t at = buf_.find(kClose);
        if (at != std::string::npos) {
          out.reasoning += buf_.substr(0, at);
          buf_.erase(0, at + kClose.size());
          state_ = State::After;
          continue;
        }
        const size_t keep = end ? 0 : partial_tail(buf_, kClose);
        out.reasoning += buf_.substr(0, buf_.size() - keep);
        buf_.erase(0, buf_.size() - keep);
        return;
      }
      case State::After: {
        // The answer begins after the space that follows the block.
        size_t i = 0;
        while (i < buf_.size() && space(buf_[i])) ++i;
        buf_.erase(0, i);
        if (buf_.empty()) return;
        state_ = State::Content;
        continue;
      }
      case State::Content:
        out.content += buf_;
        buf_.clear();
        return;
    }
  }
}

}  // namespace moemesh
