// What the streaming parsers of model output (tool calls, think blocks) share:
// how much of a text's end could still be the start of a marker, and so must
// be held back until the next piece shows whether it is one.
#pragma once

#include <algorithm>
#include <string_view>

namespace moemesh {

inline bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// The length of the longest end of `s` that `marker` starts with (and is shorter than it).
inline size_t partial_tail(std::string_view s, std::string_view marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

}  // namespace moemesh
