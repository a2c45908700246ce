// UTF-8 validation and decoding helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moemesh::tok {

// Byte offset of the first invalid sequence, or nullopt when `s` is valid UTF-8
// (no overlongs, no surrogates, nothing above U+10FFFF).
std::optional<size_t> utf8_invalid_at(std::string_view s);

// Length of the valid prefix of `s` that ends on a character boundary, treating
// an incomplete sequence at the end as not yet complete.
size_t utf8_complete_prefix(std::string_view s);

// Invalid sequences replaced by U+FFFD, one per maximal invalid subpart (as
// Rust's String::from_utf8_lossy does).
std::string utf8_lossy(std::string_view s);

void append_utf8(std::string& out, uint32_t cp);

}  // namespace moemesh::tok
