#include "core/tokenizer/byte_level.h"

#include <vector>

#include "core/tokenizer/utf8.h"

namespace moemesh::tok {
namespace {
struct Tables {
  std::array<std::string, 256> to_unicode;
  std::vector<int16_t> to_byte;  // indexed by code point < 512, -1 if none
  Tables() : to_byte(512, -1) {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      append_utf8(to_unicode[b], cp);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

// Next code point of valid UTF-8 at i (advances i).
uint32_t next_cp(std::string_view s, size_t& i) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  int n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
  for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3f);
  i += n;
  return cp;
}
}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return tables().to_unicode; }

std::optional<uint8_t> unicode_to_byte(uint32_t cp) {
  if (cp >= 512 || tables().to_byte[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(tables().to_byte[cp]);
}

std::string bytes_to_unicode_text(std::string_view bytes) {
  const auto& t = tables().to_unicode;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += t[b];
  return out;
}

std::string token_to_bytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    const auto b = unicode_to_byte(next_cp(token, i));
    if (!b) return std::string(token);
    out += static_cast<char>(*b);
  }
  return out;
}

}  // namespace moemesh::tok
