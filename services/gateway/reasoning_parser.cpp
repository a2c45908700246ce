#include "reasoning_parser.h"

#include "held_text.h"

namespace moemesh {

namespace {
constexpr std::string_view kOpen = "<think>", kClose = "</think>";
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
        while (i < buf_.size() && is_space(buf_[i])) ++i;
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
        while (i < buf_.size() && is_space(buf_[i])) ++i;
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
