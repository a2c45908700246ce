// The gateway: an HTTP/1.1 server on Boost.Beast with the OpenAI-compatible API
// (chat completions and completions, streamed as server-sent events or not;
// models; health) in front of the attention role.
#pragma once

#include <chrono>

#include <memory>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"
#include "services/gateway/generation_client.h"
#include "services/gateway/openai_api.h"

namespace moemesh {

struct GatewayOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                     // 0: any free port
  std::vector<std::string> api_keys;     // empty: no authentication
  size_t max_body_bytes = 1 << 20;
  size_t max_inflight = 256;             // generations at once; more get 429
  size_t per_key_concurrency = 64;       // generations at once per API key (0: no limit)
  int idle_timeout_s = 120;              // an idle connection is closed
  int total_timeout_s = 600;             // a generation running longer is stopped
  int threads = 2;
  std::string model_name = "moemesh";
  ApiLimits limits;
};

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
