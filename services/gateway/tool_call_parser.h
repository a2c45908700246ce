// The calls a model writes, read out of its text as it streams (formats in
// tool_calls.h): content before the call block, then each call's id and name
// as soon as the name is complete, then its arguments in fragments. Nothing of
// the markers or of the ```json fence reaches content or arguments; text that
// is held back could still turn out to be a marker. A call that breaks the
// format before its name is complete (an unknown function, a bad header, text
// where a call should begin) comes back as text, its markers dropped; a call
// cut off in its arguments (max_tokens) stays a call with the arguments
// written so far.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tool_calls.h"

namespace moemesh {

struct ToolCallDelta {
  size_t index = 0;
  std::string id, name;   // the call's first delta only
  std::string arguments;  // a fragment
};

struct ParsedToolCall {
  std::string id, name, arguments;
};

class ToolCallParser {
 public:
  // `names`: the functions offered (a call of another comes back as text).
  ToolCallParser(ToolFormat f, std::vector<std::string> names);

  struct Out {
    std::string content;
    std::vector<ToolCallDelta> calls;
  };
  Out push(std::string_view text);
  // The end of the generation: what was held back.
  Out finish();
  // The calls so far (the last one possibly still being written).
  const std::vector<ParsedToolCall>& calls() const { return calls_; }

 private:
  enum class State { Text, Calls, Header, Args };
  void run(Out& out, bool end);
  bool header_v3(Out& out, bool end);
  bool header_v31(Out& out, bool end);
  void open_call(Out& out, std::string name);
  void malformed();
  void emit_args(Out& out, bool all);

  ToolFormat format_;
  std::vector<std::string> names_;
  State state_ = State::Text;
  std::string buf_;     // text not yet consumed
  bool marked_ = false; // call markup read since the last complete call (dropped if no call follows)
  std::string args_;    // its arguments so far
  size_t emitted_ = 0;  // of args_, given out
  std::vector<ParsedToolCall> calls_;
};

}  // namespace moemesh
