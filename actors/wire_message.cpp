#include "actors/wire_message.h"

#include "actors/curve.h"

#include <cstring>

namespace moemesh::wire {

void Message::add_payload(const void* data, size_t bytes) {
  payloads.emplace_back(data, bytes);
  header.payloads = static_cast<uint8_t>(payloads.size());
  header.payload_bytes[payloads.size() - 1] = bytes;
}

void Message::add_payload(zmq::message_t frame) {
  const size_t bytes = frame.size();
  payloads.push_back(std::move(frame));
  header.payloads = static_cast<uint8_t>(payloads.size());
  header.payload_bytes[payloads.size() - 1] = bytes;
}

void send(zmq::socket_t& s, Message& m, const std::vector<zmq::message_t>* routing) {
  if (routing)
    for (const auto& r : *routing) s.send(zmq::buffer(r.data(), r.size()), zmq::send_flags::sndmore);
  const auto h = encode_header(m.header);
  s.send(zmq::buffer(h), m.payloads.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
  for (size_t i = 0; i < m.payloads.size(); ++i)
    s.send(m.payloads[i], i + 1 == m.payloads.size() ? zmq::send_flags::none : zmq::send_flags::sndmore);
}

std::optional<Message> receive(zmq::socket_t& s, std::vector<zmq::message_t>* routing, std::string* peer) {
  std::vector<zmq::message_t> frames;
  zmq::message_t f;
  if (!s.recv(f)) return std::nullopt;
  frames.push_back(std::move(f));
  while (frames.back().more()) {
    zmq::message_t next;
    (void)s.recv(next);
    frames.push_back(std::move(next));
  }
  // ROUTER sockets: the peer's identity frame comes first (and an empty
  // delimiter frame if the peer is a REQ socket).
  size_t h = 0;
  if (routing) {
    routing->clear();
    routing->push_back(std::move(frames[h++]));
    if (h < frames.size() && frames[h].size() == 0) routing->push_back(std::move(frames[h++]));
    if (h == frames.size()) throw WireError(ErrorCode::BadFrame, "bad frame: no header frame");
  }
  // Frames that came over the wire carry their connection's metadata; the
  // identity frame a ROUTER socket adds does not.
  if (peer) *peer = curve::peer_of(frames[h]);
  std::vector<size_t> sizes;
  for (size_t i = h + 1; i < frames.size(); ++i) sizes.push_back(frames[i].size());
  Message m;
  const std::span<const uint8_t> header(static_cast<const uint8_t*>(frames[h].data()), frames[h].size());
  try {
    m.header = decode_header(header, sizes);
  } catch (const WireError& e) {
    throw WireError(e.code(), e.what(), peek_request_id(header));
  }
  for (size_t i = h + 1; i < frames.size(); ++i) {
    // ZeroMQ may hand a frame over inside its receive buffer at any offset, and
    // payload_as<T> reads T directly: a misaligned frame is copied once (fresh
    // messages are 8-byte aligned).
    if (reinterpret_cast<uintptr_t>(frames[i].data()) % alignof(uint64_t) != 0)
      frames[i] = zmq::message_t(frames[i].data(), frames[i].size());
    m.payloads.push_back(std::move(frames[i]));
  }
  return m;
}

Message error_message(uint64_t request_id, ErrorCode code, const std::string& text) {
  Message m;
  m.header.type = MsgType::Error;
  m.header.request_id = request_id;
  m.header.aux = static_cast<uint32_t>(code);
  m.add_payload(text.data(), text.size());
  return m;
}

Message json_message(MsgType type, uint64_t request_id, const nlohmann::json& j) {
  Message m;
  m.header.type = type;
  m.header.request_id = request_id;
  const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  m.add_payload(s.data(), s.size());
  return m;
}

nlohmann::json json_payload(const Message& m) {
  if (m.payloads.size() != 1) throw WireError(ErrorCode::BadFrame, "one JSON payload expected");
  try {
    return nlohmann::json::parse(std::string(m.payload_as<char>(0), m.payload_size(0)));
  } catch (const nlohmann::json::exception& e) {
    throw WireError(ErrorCode::BadFrame, std::string("invalid JSON payload: ") + e.what());
  }
}

void put_activations(Message& m, const float* x, int64_t rows, int64_t cols, WireActivations w) {
  m.header.rank = 2;
  m.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(cols), 0, 0};
  m.header.dtype = activation_dtype(w);
  if (w == WireActivations::FP8) m.header.flags |= kFlagFp8Scaled;
  zmq::message_t values(activation_value_bytes(rows, cols, w));
  zmq::message_t scales(activation_scale_bytes(rows, cols, w));
  encode_activations(x, rows, cols, w, values.data(), static_cast<float*>(scales.data()));
  m.add_payload(std::move(values));
  if (w == WireActivations::FP8) m.add_payload(std::move(scales));
}

size_t activation_frames(const Message& m) { return m.header.flags & kFlagFp8Scaled ? 2 : 1; }

WireActivations activation_encoding(const Header& h) {
  if (h.flags & kFlagFp8Scaled) return WireActivations::FP8;
  return h.dtype == DType::BF16 ? WireActivations::BF16 : WireActivations::F32;
}

std::vector<float> get_activations(const Message& m, int64_t cols, size_t first) {
  const Header& h = m.header;
  if (h.rank != 2 || h.shape[1] != cols || h.shape[0] == 0)
    throw WireError(ErrorCode::BadFrame, "activations must be [rows > 0, " + std::to_string(cols) + "]");
  const bool fp8 = h.flags & kFlagFp8Scaled;
  if (m.payloads.size() < first + (fp8 ? 2 : 1)) throw WireError(ErrorCode::BadFrame, "activations: payload frames missing");
  const int64_t rows = h.shape[0];
  std::vector<float> x(static_cast<size_t>(rows * cols));
  decode_activations(h.dtype, fp8, m.payloads[first].data(), m.payloads[first].size(),
                     fp8 ? m.payload_as<float>(first + 1) : nullptr, fp8 ? m.payload_size(first + 1) : 0, rows, cols,
                     x.data());
  return x;
}

}  // namespace moemesh::wire
