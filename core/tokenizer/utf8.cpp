#include "core/tokenizer/utf8.h"

namespace moemesh::tok {
namespace {
// Length of the valid sequence starting at i (0 if invalid), and whether it is
// only truncated (a valid beginning cut off by the end of the input).
size_t valid_len(std::string_view s, size_t i, bool* truncated) {
  *truncated = false;
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint8_t lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c == 0xe0) { n = 3; lo = 0xa0; }
  else if (c >= 0xe1 && c <= 0xec) n = 3;
  else if (c == 0xed) { n = 3; hi = 0x9f; }
  else if (c >= 0xee && c <= 0xef) n = 3;
  else if (c == 0xf0) { n = 4; lo = 0x90; }
  else if (c >= 0xf1 && c <= 0xf3) n = 4;
  else if (c == 0xf4) { n = 4; hi = 0x8f; }
  else return 0;
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) { *truncated = true; return 0; }
    const uint8_t x = b(i + k);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xbf;
    if (x < l || x > h) return 0;
  }
  return n;
}
// Bytes of the maximal invalid subpart at i (at least 1).
size_t invalid_len(std::string_view s, size_t i) {
  bool t;
  // A valid lead with some valid continuations counts as one unit.
  size_t k = 1;
  const uint8_t c = static_cast<uint8_t>(s[i]);
  if (c >= 0xc2 && c <= 0xf4) {
    std::string_view rest = s.substr(i);
    for (size_t len = std::min<size_t>(4, rest.size()); len > 1; --len) {
      // A prefix that would be valid if completed.
      std::string probe(rest.substr(0, len));
      if (valid_len(probe, 0, &t) == 0 && t) { k = len; break; }
    }
  }
  return k;
}
}  // namespace

std::optional<size_t> utf8_invalid_at(std::string_view s) {
  size_t i = 0;
  bool t;
  while (i < s.size()) {
    const size_t n = valid_len(s, i, &t);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

size_t utf8_complete_prefix(std::string_view s) {
  size_t i = 0;
  bool t;
  while (i < s.size()) {
    const size_t n = valid_len(s, i, &t);
    if (n == 0) {
      if (t) return i;  // an unfinished character at the end
      ++i;              // an invalid byte: complete (it becomes U+FFFD)
      continue;
    }
    i += n;
  }
  return i;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  bool t;
  while (i < s.size()) {
    const size_t n = valid_len(s, i, &t);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += invalid_len(s, i);
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

}  // namespace moemesh::tok
