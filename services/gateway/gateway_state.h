// What every gateway connection shares: options, tokenizer and chat template,
// the connection to the attention role, readiness and the in-flight count.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "core/tokenizer/chat_template.h"
#include "api_keys.h"
#include "tool_calls.h"
#include "gateway.h"
#include "gateway_metrics.h"

namespace moemesh {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// An io_context whose pending handlers can be let go of at stop. They hold the
// sessions, which hold the gateway's state, which holds this context: without
// it, a connection still open at stop (a keep-alive client, a stream) would
// keep all of it alive for good.
struct GatewayIoContext : net::io_context {
  using net::io_context::shutdown;  // destroys every handler not yet run
};

struct Gateway::Impl : std::enable_shared_from_this<Gateway::Impl> {
  GatewayOptions opts;
  std::shared_ptr<const tok::Tokenizer> tk;
  std::optional<tok::ChatTemplate> tpl;
  GenerationClient& client;
  std::vector<int32_t> stop_ids;
  GatewayIoContext ioc;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};  // stopping: not ready for good
  const char* not_ready_reason() const { return draining ? "the gateway is shutting down" : "the mesh is not ready"; }
  std::atomic<size_t> inflight{0};
  std::unique_ptr<GatewayMetrics> metrics;  // made when the port is known

  ApiKeys keys;
  // TLS: the certificate and key as last loaded (SIGHUP loads them again); null: plain HTTP.
  std::shared_ptr<net::ssl::context> tls() const {
    std::lock_guard<std::mutex> lock(tls_mu);
    return tls_ctx;
  }
  // Loads opts.tls_cert and opts.tls_key; throws std::runtime_error naming the file.
  void load_tls();
  mutable std::mutex tls_mu;
  std::shared_ptr<net::ssl::context> tls_ctx;
  std::optional<net::signal_set> sighup;
  std::function<void()> rearm_sighup;

  Impl(GatewayOptions o, std::shared_ptr<const tok::Tokenizer> t, GenerationClient& c, std::vector<int32_t> s)
      : opts(std::move(o)), tk(std::move(t)), client(c), stop_ids(std::move(s)), keys(opts.api_keys, opts.api_key_digests) {
    // Only the digests stay: no key in clear is kept once they are made.
    for (auto& k : opts.api_keys) std::fill(k.begin(), k.end(), '\0');
    opts.api_keys.clear();
    if (opts.tls_cert.empty() != opts.tls_key.empty()) throw std::invalid_argument("gateway: tls_cert and tls_key go together");
    if (!opts.tls_cert.empty()) load_tls();
    try {
      tpl.emplace(tok::ChatTemplate::for_tokenizer(*tk));
    } catch (const std::exception& e) {
      spdlog::warn("gateway: no chat template ({}); chat is off", e.what());
    }
    // How answers are read: both templates rendered here call tools in V3's format.
    if (opts.tool_parser != "auto") {
      const auto f = tool_format_named(opts.tool_parser);
      if (!f) throw std::invalid_argument("gateway.tool_parser must be auto, deepseek_v3 or deepseek_v31, not '" + opts.tool_parser + "'");
      opts.limits.tool_format = *f;
    }
    if (opts.reasoning != "auto" && opts.reasoning != "on" && opts.reasoning != "off")
      throw std::invalid_argument("gateway.reasoning must be auto, on or off, not '" + opts.reasoning + "'");
    opts.limits.reasoning = opts.reasoning == "on" || (opts.reasoning == "auto" && tpl && tpl->opens_think());
    spdlog::info("gateway: tool calls read as {}, reasoning {}", tool_format_name(opts.limits.tool_format),
                 opts.limits.reasoning ? "split into reasoning_content" : "off");
  }
  void accept();

  // Takes a generation slot for `key`; false when max_inflight are running, or
  // per_key_concurrency for that key.
  bool take_slot(const std::string& key) {
    std::lock_guard<std::mutex> lock(slots_mu);
    if (inflight >= opts.max_inflight) return false;
    if (opts.per_key_concurrency && per_key[key] >= opts.per_key_concurrency) return false;
    ++per_key[key];
    metrics->in_flight(++inflight);
    return true;
  }
  void give_slot(const std::string& key) {
    std::lock_guard<std::mutex> lock(slots_mu);
    if (--per_key[key] == 0) per_key.erase(key);
    metrics->in_flight(--inflight);
  }
  std::mutex slots_mu;
  std::map<std::string, size_t> per_key;
  // The key's label (ApiKeys::match) when it is accepted.
  std::optional<std::string> key_label(std::string_view key) const { return keys.match(key); }
};

// Takes over an upgraded connection: the WebSocket chat protocol (docs/API.md).
void start_websocket(beast::tcp_stream stream, http::request<http::string_body> upgrade, std::shared_ptr<Gateway::Impl> g,
                     std::string api_key);
void start_websocket(TlsStream stream, http::request<http::string_body> upgrade, std::shared_ptr<Gateway::Impl> g,
                     std::string api_key);

// The web chat page served at "/".
extern const char* const kChatPage;

}  // namespace moemesh
