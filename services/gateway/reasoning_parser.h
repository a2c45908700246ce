// The reasoning of R1-style models read out of their text as it streams: what
// is inside <think>…</think> is reasoning_content, the rest content. When the
// chat template opens the think block itself (DeepSeek-R1's), the text starts
// inside it. Text that could still be the start of a marker is held back.
#pragma once

#include <string>
#include <string_view>

namespace moemesh {

class ReasoningParser {
 public:
  // `opened`: the prompt ends inside a think block.
  explicit ReasoningParser(bool opened) : opened_(opened) {}

  struct Out {
    std::string reasoning, content;
  };
  Out push(std::string_view text);
  Out finish();
  // Inside the think block (a token that enters or leaves it counts as reasoning).
  bool in_think() const { return state_ == State::Think || (state_ == State::Start && opened_); }

 private:
  enum class State { Start, Think, After, Content };
  void run(Out& out, bool end);
  bool opened_;
  State state_ = State::Start;
  std::string buf_;
};

}  // namespace moemesh
