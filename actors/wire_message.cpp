#include "actors/wire_message.h"

#include <cstring>

namespace moemesh::wire {

void Message::add_payload(const void* data, size_t bytes) {
  payloads.emplace_back(data, bytes);
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

std::optional<Message> receive(zmq::socket_t& s, std::vector<zmq::message_t>* routing) {
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
  std::vector<size_t> sizes;
  for (size_t i = h + 1; i < frames.size(); ++i) sizes.push_back(frames[i].size());
  Message m;
  m.header = decode_header(std::span<const uint8_t>(static_cast<const uint8_t*>(frames[h].data()), frames[h].size()), sizes);
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

}  // namespace moemesh::wire
