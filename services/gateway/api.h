// The gateway role's public contract: its options, and the service that puts
// it in front of the attention replicas (the one setup `moemesh up` and `moemesh
// serve gateway` share). Everything else of the gateway is internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "actors/wire_message.h"

namespace moemesh {

// How the model writes tool calls (docs/API.md has both formats).
enum class ToolFormat { DeepSeekV3, DeepSeekV31 };

// What the API accepts, and how it reads the model's answers.
struct ApiLimits {
  int64_t default_max_tokens = 256;
  int64_t max_tokens = 4096;
  size_t max_messages = 256;
  size_t max_stop = 4;
  int64_t max_n = 16;  // choices per request
  // Resolved from gateway.tool_parser and gateway.reasoning against the checkpoint.
  ToolFormat tool_format = ToolFormat::DeepSeekV3;
  bool reasoning = false;  // <think>…</think> is returned as reasoning_content
};

struct GatewayOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;                  // 0: any free port
  std::vector<std::string> api_keys;     // in clear; with api_key_digests empty: no authentication
  std::vector<std::string> api_key_digests;  // "sha256:" and 64 hex digits each
  std::string tls_cert, tls_key;         // PEM files: HTTPS and WSS (reloaded on SIGHUP); empty: plain HTTP
  bool hsts = false;                     // with TLS: Strict-Transport-Security on every answer
  size_t max_body_bytes = 1 << 20;
  size_t max_inflight = 256;             // generations at once; more get 429
  size_t per_key_concurrency = 64;       // generations at once per API key (0: no limit)
  int idle_timeout_s = 120;              // an idle connection is closed
  int total_timeout_s = 600;             // a generation running longer is stopped
  int threads = 2;
  std::string model_name;                 // in the API; empty: the checkpoint directory's name
  int64_t max_model_len = 0;              // the model's context in tokens; 0: from its config.json
  std::string tool_parser = "auto";       // deepseek_v3, deepseek_v31; auto: the checkpoint's format
  std::string reasoning = "auto";         // on, off; auto: on when the chat template opens a think block (R1)
  // Attention replicas (docs/MESH.md): which one a request goes to, and when a
  // silent one is taken for hung and its streams resume elsewhere.
  std::string routing = "cache_aware";    // cache_aware, least_load, round_robin
  int64_t balance_abs = 16;               // cache_aware: a replica holding the prefix is passed over when busier than
  double balance_rel = 1.5;               // the least-loaded by more than balance_abs requests and balance_rel times
  int64_t stall_floor_ms = 1000;
  int64_t replica_wait_ms = 30000;        // a request waits this long for a usable replica
  ApiLimits limits;
};

// Where the gateway finds the attention tier: fixed endpoints, the router's
// list of replicas, or both.
struct GatewayUpstream {
  std::vector<std::string> attention;
  std::string router;
};

// The HTTP status a failed generation answers with, chosen by its error code.
int http_status_for(wire::ErrorCode code);

class GatewayService {
 public:
  // `model`: the checkpoint directory (tokenizer, chat template, end-of-sequence id;
  // the model's name in the API unless opts.model_name is set); `upstream`: the attention replicas.
  // Throws std::invalid_argument for options out of range, naming them.
  GatewayService(GatewayOptions opts, const std::string& model, GatewayUpstream upstream, zmq::context_t& ctx);
  ~GatewayService();
  // Listens and serves, ready at once; returns the port.
  uint16_t start();
  // New generations are answered 503 while the running ones finish (up to
  // `deadline`); true when none was left. Then stop().
  bool drain(std::chrono::milliseconds deadline);
  void stop();
  const GatewayOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moemesh
