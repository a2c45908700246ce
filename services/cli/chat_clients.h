// Streaming chat clients of the gateway for the benchmarks: one request over
// HTTP (Server-Sent Events) or over the WebSocket chat, with the longest wait
// the client saw (before the first piece and between pieces) and whether it
// ended as a whole answer.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace moemesh::cli {

struct ChatOutcome {
  bool ok = false;        // HTTP 200 (or a WebSocket `done`), finish stop or length, no error
  std::string error;      // why not
  std::string text;
  std::string finish;
  double first_ms = 0;    // to the first piece
  double max_gap_ms = 0;  // longest wait between two pieces
  int64_t completion_tokens = 0;  // from the WebSocket `done` message's usage
};

// `host`, `port`: the gateway; `body`: a chat request (messages, max_tokens...).
ChatOutcome chat_sse(const std::string& host, uint16_t port, nlohmann::json body);
ChatOutcome chat_websocket(const std::string& host, uint16_t port, nlohmann::json body);

}  // namespace moemesh::cli
