// The mesh's binary wire format, version 1 (docs/WIRE.md): one header frame
// followed by payload frames sent as they are. Every field of a received header
// is validated before anything is trusted; a bad frame raises WireError, which
// the receiver answers with an Error message and counts.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moemesh::wire {

constexpr uint32_t kMagic = 0x48534d4d;  // "MMSH" little-endian
constexpr uint16_t kVersion = 1;
constexpr size_t kHeaderBytes = 96;
constexpr size_t kMaxRank = 4;
constexpr size_t kMaxPayloads = 4;
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 32;  // 4 GiB per frame

enum class MsgType : uint16_t {
  Error = 0,        // payload 0: UTF-8 message; code in `aux`
  Hello = 1,        // payload 0: JSON (role, instance, experts held)
  Heartbeat = 2,    // payload 0: JSON load report
  MoeRequest = 3,   // attention → router: hidden states [tokens, hidden] of `layer`
  MoeResponse = 4,  // router → attention: combined routed output [tokens, hidden]
  Dispatch = 5,     // router → expert host: activations, expert ids, weights
  Combine = 6,      // expert host → router: weighted partial sums [tokens, hidden]
  DraftRequest = 7, // attention → mtp-draft: hidden states + tokens
  DraftResponse = 8,
  Control = 9,      // payload 0: JSON command (load/unload experts, drain, rebalance, stats); reply: JSON
  Generate = 10,    // client → attention: payload 0 JSON generation request
  Tokens = 11,      // attention → client: payload 0 JSON {"tokens": [...], "finish": ...}
  Score = 12,       // client → attention: payload 0 int32 token ids; aux 1: MTP logits too
  Logits = 13,      // attention → client: payload 0 f32 [T, vocab]; payload 1 MTP logits [T-1, vocab]
};
constexpr uint16_t kMaxMsgType = 13;

enum class ErrorCode : uint32_t { None = 0, BadFrame = 1, Unsupported = 2, Overloaded = 3, Failed = 4, Timeout = 5, ShuttingDown = 6 };

// Flags.
constexpr uint16_t kFlagFp8Scaled = 1;  // payload 0 is fp8-e4m3, payload 1 its f32 scales per 128 values

class WireError : public std::runtime_error {
 public:
  WireError(ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

struct Header {
  MsgType type = MsgType::Error;
  uint16_t flags = 0;
  DType dtype = DType::U8;  // element type of payload 0
  uint8_t rank = 0;
  uint64_t request_id = 0;  // correlates a reply with its request
  uint64_t sequence = 0;    // sender's message counter (micro-batch id)
  int32_t layer = -1;
  uint32_t aux = 0;         // type-specific: error code, top_k, draft length
  std::array<uint32_t, kMaxRank> shape{};
  uint8_t payloads = 0;
  std::array<uint64_t, kMaxPayloads> payload_bytes{};

  uint64_t numel() const;
};

// The header's 96 bytes.
std::array<uint8_t, kHeaderBytes> encode_header(const Header& h);

// Parses and validates a header frame and the sizes of the payload frames that
// came with it. Throws WireError(BadFrame) naming the field.
Header decode_header(std::span<const uint8_t> frame, std::span<const size_t> payload_sizes);

// Dispatch activations as fp8-e4m3 with one f32 scale per 128 values of a row.
struct Fp8Rows {
  std::vector<uint8_t> values;  // [rows, cols]
  std::vector<float> scales;    // [rows, ceil(cols / 128)]
};
Fp8Rows quantize_rows_fp8(const float* x, int64_t rows, int64_t cols);
void dequantize_rows_fp8(const uint8_t* values, const float* scales, int64_t rows, int64_t cols, float* out);

}  // namespace moemesh::wire
