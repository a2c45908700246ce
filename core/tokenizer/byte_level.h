// GPT-2 byte-level mapping: every byte has a printable Unicode stand-in, so BPE
// works on text without spaces or control characters.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moemesh::tok {

// UTF-8 of the stand-in character of each byte.
const std::array<std::string, 256>& byte_to_unicode();
// The byte a stand-in code point represents, if it is one.
std::optional<uint8_t> unicode_to_byte(uint32_t cp);

// Maps raw bytes to their stand-ins.
std::string bytes_to_unicode_text(std::string_view bytes);

// Decodes one vocabulary token: each character back to its byte; a token with a
// character outside the mapping decodes to its own UTF-8 bytes (as Hugging Face's
// ByteLevel decoder does).
std::string token_to_bytes(std::string_view token);

}  // namespace moemesh::tok
