// A wire-format message in memory and its transfer over ZeroMQ sockets: the
// header frame, then each payload as its own frame without re-serialisation.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "core/activations.h"
#include "core/wire.h"

namespace moemesh::wire {

struct Message {
  Header header;
  std::vector<zmq::message_t> payloads;

  // Adds a payload frame (copies the bytes once into a ZeroMQ message).
  void add_payload(const void* data, size_t bytes);
  void add_payload(zmq::message_t frame);  // without a copy
  template <class T>
  void add_payload(const std::vector<T>& v) { add_payload(v.data(), v.size() * sizeof(T)); }
  template <class T>
  const T* payload_as(size_t i) const { return static_cast<const T*>(payloads.at(i).data()); }
  size_t payload_size(size_t i) const { return payloads.at(i).size(); }
};

// Sends `routing` frames (ROUTER identities, possibly none), the header, the payloads.
void send(zmq::socket_t& s, Message& m, const std::vector<zmq::message_t>* routing = nullptr);

// Receives one message; with `routing` (a ROUTER socket), the identity frames
// before the header are stored there. Returns nullopt on timeout (when the socket
// has a receive timeout). A malformed message throws WireError after the whole
// multipart message has been consumed, so the socket stays in step.
// `peer`: set to the "kind/name" CURVE's ZAP handler gave the sender's connection (actors/curve.h).
std::optional<Message> receive(zmq::socket_t& s, std::vector<zmq::message_t>* routing = nullptr, std::string* peer = nullptr);

Message error_message(uint64_t request_id, ErrorCode code, const std::string& text);

// Sets the header's rank, shape, dtype and flags for [rows, cols] activations and
// adds their payload frames (core/activations.h), written straight into them.
void put_activations(Message& m, const float* x, int64_t rows, int64_t cols, WireActivations w);
// The activations of payload `first` (and its scale frame) as f32 [rows, cols]:
// rows from the header, which must be [rows > 0, cols]. Throws WireError(BadFrame).
std::vector<float> get_activations(const Message& m, int64_t cols, size_t first = 0);
// Payload frames the activations of `m` take (1, or 2 with fp8 scales).
size_t activation_frames(const Message& m);
// The encoding the header announces (F32 for anything that is neither bf16 nor fp8).
WireActivations activation_encoding(const Header& h);

// A message whose single payload is `j` as JSON text (Hello, Control, Generate, Tokens …).
Message json_message(MsgType type, uint64_t request_id, const nlohmann::json& j);
// That payload parsed; throws WireError(BadFrame) when there is not exactly one
// payload or it is not JSON.
nlohmann::json json_payload(const Message& m);

}  // namespace moemesh::wire
