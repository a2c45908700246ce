// The gateway's HTTP server on Boost.Beast: the OpenAI-compatible API (chat
// completions and completions, streamed as server-sent events or not; models;
// health), the WebSocket chat and the chat page, in front of the attention role.
#pragma once

#include <chrono>

#include <memory>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"
#include "services/gateway/api.h"
#include "generation_client.h"

namespace moemesh {

class Gateway {
 public:
  Gateway(GatewayOptions opts, std::shared_ptr<const tok::Tokenizer> tokenizer, GenerationClient& client,
          std::vector<int32_t> stop_ids);
  ~Gateway();
  // Listens and serves; returns the port.
  uint16_t start();
  void stop();
  void set_ready(bool ready);
  // Graceful stop: new generations are answered 503 while the running ones
  // finish; waits up to `deadline`, true when none is left. Then stop().
  bool drain(std::chrono::milliseconds deadline);

  struct Impl;  // public so the connection sessions can reach it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace moemesh
