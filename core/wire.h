// The mesh's binary wire format, version 2 (docs/WIRE.md): one header frame
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
constexpr uint16_t kVersion = 2;
// The oldest version this side still reads: a rollout runs roles of adjacent
// versions side by side only when their ranges overlap (docs/WIRE.md).
constexpr uint16_t kMinVersion = 2;
constexpr size_t kHeaderBytes = 96;
constexpr size_t kMaxRank = 4;
constexpr size_t kMaxPayloads = 4;
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 32;  // 4 GiB per frame

enum class MsgType : uint16_t {
  Error = 0,        // payload 0: UTF-8 message; code in `aux`
  Hello = 1,        // expert host → router: JSON report (name, endpoint, zone, experts, capacity)
  Heartbeat = 2,    // expert host → router: the same report with its load since the last one
  // 3 and 4 carried version 1's MoeRequest/MoeResponse through the router; unused since.
  Dispatch = 5,     // dispatcher → expert host: activations, expert ids, weights (aux: top_k, sequence: table version)
  Combine = 6,      // expert host → dispatcher: weighted partial sums [rows, hidden]
  DraftRequest = 7, // attention → mtp-draft: hidden states + tokens
  DraftResponse = 8,
  Control = 9,      // payload 0: JSON command (per role: docs/WIRE.md); reply: JSON
  Generate = 10,    // client → attention: payload 0 JSON generation request
  Tokens = 11,      // attention → client: payload 0 JSON {"tokens": [...], "finish": ...}
  Score = 12,       // client → attention: payload 0 int32 token ids; aux 1: MTP logits too
  Logits = 13,      // attention → client: payload 0 f32 [T, vocab]; payload 1 MTP logits [T-1, vocab]
  Subscribe = 14,   // dispatcher → router: JSON {name, zone}; the router answers with Table and sends every new one
  Table = 15,       // router → dispatcher: JSON placement table (version, hosts, their experts and load)
  Suspect = 16,     // dispatcher → router: JSON {host, reason: disconnect | deadline, detail}
  Replica = 17,     // attention replica → router: JSON report (name, endpoint, zone, load) every 250 ms
};
constexpr uint16_t kMaxMsgType = 17;
bool is_known_type(uint16_t type);

enum class ErrorCode : uint32_t {
  None = 0,
  BadFrame = 1,      // malformed or invalid input: the sender's fault
  Unsupported = 2,   // a message type, command or version this role does not handle
  Overloaded = 3,    // try again later
  Failed = 4,        // the role could not do it
  Timeout = 5,
  ShuttingDown = 6,  // the role is draining and takes no new work
  NotHeld = 7,       // an expert host does not hold an expert it was sent: retry elsewhere, refresh the table
  TooLarge = 8,      // a request beyond a limit (prompt and new tokens beyond the KV cache, ...)
  NoReplica = 9,     // no live expert host holds an expert a token needs
  Forbidden = 10,    // the sender's key does not allow this (docs/SECURITY.md)
};
constexpr uint32_t kMaxErrorCode = 10;
const char* error_code_name(ErrorCode c);

// Flags.
constexpr uint16_t kFlagFp8Scaled = 1;  // payload 0 is fp8-e4m3, payload 1 its f32 scales per 128 values

class WireError : public std::runtime_error {
 public:
  WireError(ErrorCode code, const std::string& what, uint64_t request_id = 0)
      : std::runtime_error(what), code_(code), request_id_(request_id) {}
  ErrorCode code() const { return code_; }
  // The refused message's request id where its header could still be read (0: unknown),
  // so the error reaches the request that caused it.
  uint64_t request_id() const { return request_id_; }

 private:
  ErrorCode code_;
  uint64_t request_id_ = 0;
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
// The request id of a header frame whose size and magic are right (0 otherwise).
uint64_t peek_request_id(std::span<const uint8_t> frame);

}  // namespace moemesh::wire
