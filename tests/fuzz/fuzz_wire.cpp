// libFuzzer target: the wire header decoder on arbitrary frames.
#include <vector>

#include "core/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moemesh::wire;
  if (size < 1) return 0;
  // First byte: how many payload frames arrived; sizes from the next bytes.
  const size_t n = data[0] % 6;
  std::vector<size_t> sizes;
  size_t off = 1;
  for (size_t i = 0; i < n && off + 2 <= size; ++i, off += 2) sizes.push_back(data[off] | data[off + 1] << 8);
  const std::span<const uint8_t> frame(data + off, size - off);
  try {
    const Header h = decode_header(frame, sizes);
    // Whatever is accepted re-encodes to the same bytes.
    if (!std::equal(frame.begin(), frame.end(), encode_header(h).begin())) __builtin_trap();
  } catch (const WireError&) {
  }
  return 0;
}
