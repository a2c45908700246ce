#include "core/wire.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace moemesh::wire {
namespace {

// Little-endian field access at fixed offsets.
template <class T>
void put(uint8_t* p, size_t off, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[off + i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
}
template <class T>
T get(const uint8_t* p, size_t off) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(p[off + i]) << (8 * i);
  return static_cast<T>(v);
}

// Offsets of the header fields (docs/WIRE.md).
enum : size_t {
  kOffMagic = 0, kOffVersion = 4, kOffType = 6, kOffFlags = 8, kOffDtype = 10, kOffRank = 11,
  kOffRequest = 12, kOffSequence = 20, kOffLayer = 28, kOffAux = 32, kOffShape = 36, kOffPayloads = 52,
  kOffReserved = 53, kOffPayloadBytes = 56, kOffTail = 88,
};
static_assert(kOffTail + 8 == kHeaderBytes);

constexpr uint8_t dtype_code(DType t) { return static_cast<uint8_t>(t); }

[[noreturn]] void bad(const std::string& why) { throw WireError(ErrorCode::BadFrame, "bad frame: " + why); }

}  // namespace

bool is_known_type(uint16_t type) { return type <= kMaxMsgType && type != 3 && type != 4; }

const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::None: return "none";
    case ErrorCode::BadFrame: return "bad_frame";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Overloaded: return "overloaded";
    case ErrorCode::Failed: return "failed";
    case ErrorCode::Timeout: return "timeout";
    case ErrorCode::ShuttingDown: return "shutting_down";
    case ErrorCode::NotHeld: return "not_held";
    case ErrorCode::TooLarge: return "too_large";
    case ErrorCode::NoReplica: return "no_replica";
    case ErrorCode::Forbidden: return "forbidden";
  }
  return "?";
}

uint64_t Header::numel() const {
  uint64_t n = 1;
  for (size_t i = 0; i < rank; ++i) n *= shape[i];
  return n;
}

std::array<uint8_t, kHeaderBytes> encode_header(const Header& h) {
  std::array<uint8_t, kHeaderBytes> b{};
  uint8_t* p = b.data();
  put<uint32_t>(p, kOffMagic, kMagic);
  put<uint16_t>(p, kOffVersion, kVersion);
  put<uint16_t>(p, kOffType, static_cast<uint16_t>(h.type));
  put<uint16_t>(p, kOffFlags, h.flags);
  put<uint8_t>(p, kOffDtype, dtype_code(h.dtype));
  put<uint8_t>(p, kOffRank, h.rank);
  put<uint64_t>(p, kOffRequest, h.request_id);
  put<uint64_t>(p, kOffSequence, h.sequence);
  put<uint32_t>(p, kOffLayer, static_cast<uint32_t>(h.layer));
  put<uint32_t>(p, kOffAux, h.aux);
  for (size_t i = 0; i < kMaxRank; ++i) put<uint32_t>(p, kOffShape + 4 * i, h.shape[i]);
  put<uint8_t>(p, kOffPayloads, h.payloads);
  for (size_t i = 0; i < kMaxPayloads; ++i) put<uint64_t>(p, kOffPayloadBytes + 8 * i, h.payload_bytes[i]);
  return b;
}

uint64_t peek_request_id(std::span<const uint8_t> frame) {
  if (frame.size() != kHeaderBytes || get<uint32_t>(frame.data(), kOffMagic) != kMagic) return 0;
  return get<uint64_t>(frame.data(), kOffRequest);
}

Header decode_header(std::span<const uint8_t> frame, std::span<const size_t> payload_sizes) {
  if (frame.size() != kHeaderBytes)
    bad("header is " + std::to_string(frame.size()) + " bytes, expected " + std::to_string(kHeaderBytes));
  const uint8_t* p = frame.data();
  if (get<uint32_t>(p, kOffMagic) != kMagic) bad("magic");
  const uint16_t version = get<uint16_t>(p, kOffVersion);
  if (version < kMinVersion || version > kVersion)
    throw WireError(ErrorCode::Unsupported, "bad frame: wire version " + std::to_string(version) + "; this side reads " +
                                                std::to_string(kMinVersion) + ".." + std::to_string(kVersion) +
                                                " (roles of one rollout must overlap: docs/WIRE.md)");
  Header h;
  const uint16_t type = get<uint16_t>(p, kOffType);
  if (!is_known_type(type)) bad("message type " + std::to_string(type));
  h.type = static_cast<MsgType>(type);
  h.flags = get<uint16_t>(p, kOffFlags);
  if (h.flags & ~kFlagFp8Scaled) bad("unknown flags " + std::to_string(h.flags));
  const uint8_t dt = get<uint8_t>(p, kOffDtype);
  if (dt > static_cast<uint8_t>(DType::F64)) bad("dtype " + std::to_string(dt));
  h.dtype = static_cast<DType>(dt);
  h.rank = get<uint8_t>(p, kOffRank);
  if (h.rank > kMaxRank) bad("rank " + std::to_string(h.rank));
  h.request_id = get<uint64_t>(p, kOffRequest);
  h.sequence = get<uint64_t>(p, kOffSequence);
  h.layer = static_cast<int32_t>(get<uint32_t>(p, kOffLayer));
  if (h.layer < -1 || h.layer > 4096) bad("layer " + std::to_string(h.layer));
  h.aux = get<uint32_t>(p, kOffAux);
  for (size_t i = 0; i < kMaxRank; ++i) {
    h.shape[i] = get<uint32_t>(p, kOffShape + 4 * i);
    if (i >= h.rank && h.shape[i] != 0) bad("shape beyond rank");
  }
  h.payloads = get<uint8_t>(p, kOffPayloads);
  if (h.payloads > kMaxPayloads) bad("payload count " + std::to_string(h.payloads));
  for (size_t i = kOffReserved; i < kOffPayloadBytes; ++i)
    if (p[i]) bad("reserved bytes are not zero");
  for (size_t i = kOffTail; i < kHeaderBytes; ++i)
    if (p[i]) bad("reserved bytes are not zero");
  if (payload_sizes.size() != h.payloads)
    bad("header announces " + std::to_string(h.payloads) + " payload frames, " + std::to_string(payload_sizes.size()) + " came");
  for (size_t i = 0; i < kMaxPayloads; ++i) {
    h.payload_bytes[i] = get<uint64_t>(p, kOffPayloadBytes + 8 * i);
    if (i >= h.payloads && h.payload_bytes[i] != 0) bad("payload size beyond payload count");
    if (h.payload_bytes[i] > kMaxPayloadBytes) bad("payload " + std::to_string(i) + " too large");
    if (i < h.payloads && h.payload_bytes[i] != payload_sizes[i])
      bad("payload " + std::to_string(i) + " is " + std::to_string(payload_sizes[i]) + " bytes, header says " +
          std::to_string(h.payload_bytes[i]));
  }
  // A tensor in payload 0 must fill it exactly (no overflow: each dim < 2^32, rank <= 4, checked in 128 bits).
  if (h.rank > 0) {
    if (h.payloads == 0) bad("a shape without a payload");
    unsigned __int128 n = dtype_size(h.dtype);
    for (size_t i = 0; i < h.rank; ++i) n *= h.shape[i];
    if (n != h.payload_bytes[0]) bad("shape and dtype do not match payload 0's size");
  }
  if (h.flags & kFlagFp8Scaled) {
    if (h.dtype != DType::F8_E4M3 || h.rank != 2 || h.payloads < 2) bad("fp8-scaled payload needs dtype F8_E4M3, rank 2, a scale frame");
    const uint64_t blocks = (static_cast<uint64_t>(h.shape[1]) + 127) / 128;
    if (h.payload_bytes[1] != static_cast<uint64_t>(h.shape[0]) * blocks * 4) bad("fp8 scale frame size");
  }
  return h;
}

}  // namespace moemesh::wire
