// libFuzzer target: encode arbitrary bytes, then decode what came out.
// Build: cmake -DMOEMESH_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ ...; run with
// MOEMESH_TOKENIZER_DIR pointing at a tokenizer directory.
#include <cstdlib>
#include <string_view>

#include "core/tokenizer/streaming_decoder.h"
#include "core/tokenizer/tokenizer.h"

using namespace moemesh::tok;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto tok = Tokenizer::load(std::getenv("MOEMESH_TOKENIZER_DIR") ? std::getenv("MOEMESH_TOKENIZER_DIR")
                                                                          : MOEMESH_DEFAULT_TOKENIZER_DIR);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text, false);
  } catch (const TokenizerError&) {
    return 0;  // invalid UTF-8 is refused, never a crash
  }
  const std::string back = tok->decode(ids, false);
  if (back != text) std::abort();
  StreamingDecoder d(tok, false);
  std::string streamed;
  for (int32_t id : ids) streamed += d.push(id);
  streamed += d.finish();
  if (streamed != back) std::abort();
  // Arbitrary ids decode without crashing (unknown ones are refused).
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 4 <= size; i += 4) raw.push_back(static_cast<int32_t>(data[i] | data[i + 1] << 8 | data[i + 2] << 16) % 130000);
  try {
    tok->decode(raw, false);
  } catch (const TokenizerError&) {
  }
  return 0;
}
