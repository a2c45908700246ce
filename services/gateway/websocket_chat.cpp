// The WebSocket chat protocol (docs/API.md): chat requests with ids, several at
// once on one socket, streamed deltas, a final message with usage and timings,
// cancel by id, ping/pong. Closing the socket cancels what is still running.
#include <chrono>
#include <deque>
#include <map>

#include "gateway_state.h"
#include "logprobs_json.h"
#include "text_stream.h"
#include "websocket_message.h"

namespace moemesh {
namespace {

namespace websocket = beast::websocket;
using clock_type = std::chrono::steady_clock;

constexpr size_t kMaxActivePerSocket = 16;
constexpr size_t kMaxQueuedBytes = 8u << 20;

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

class WsChat : public std::enable_shared_from_this<WsChat> {
 public:
  WsChat(tcp::socket s, std::shared_ptr<Gateway::Impl> g, std::string key) : ws_(std::move(s)), g_(std::move(g)), key_(std::move(key)) {}

  void start(http::request<http::string_body> upgrade) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(g_->opts.max_body_bytes);
    ws_.async_accept(upgrade, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->read();
    });
  }

 private:
  struct Active {
    uint64_t gen = 0;
    ApiRequest api;
    std::optional<TextStream> text;
    std::optional<LogprobsJson> logprobs;
    bool stopped = false;  // a stop string ended the text: the generation was cancelled
    clock_type::time_point start, first;
    int64_t tokens = 0;
    bool got_first = false;
  };

  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      // Closed, timed out, too large, or not WebSocket at all: drop the connection.
      shutdown();
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().close(ignored);
      return;
    }
    const std::string text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    if (!ws_.got_text()) {
      send_error(nullptr, 400, "messages are JSON text frames");
    } else {
      handle(text);
    }
    read();
  }

  void handle(const std::string& text) {
    WsMessage msg = decode_ws_message(text, *g_->tk, g_->tpl ? &*g_->tpl : nullptr, g_->opts.limits);
    if (const auto* e = std::get_if<WsError>(&msg)) return send_error(e->id, e->status, e->message);
    if (const auto* p = std::get_if<WsPing>(&msg)) return send(dump({{"type", "pong"}, {"id", p->id}}));
    if (const auto* c = std::get_if<WsCancel>(&msg)) {
      auto it = active_.find(c->id);
      if (it == active_.end()) return send_error(c->id, 404, "no running request with this id");
      g_->client.cancel(it->second.gen);
      return;
    }
    auto& chat = std::get<WsChatRequest>(msg);
    const std::string key = chat.id;
    if (active_.count(key)) return send_error(key, 409, "a request with this id is running");
    if (active_.size() >= kMaxActivePerSocket)
      return send_error(key, 429, "at most " + std::to_string(kMaxActivePerSocket) + " requests at once per socket");
    if (!g_->ready) return send_error(key, 503, g_->not_ready_reason());
    if (!g_->take_slot(key_)) return send_error(key, 429, "too many requests in flight; retry later");
    Active a;
    a.api = std::move(chat.api);
    if (!a.api.ignore_eos) a.api.gen.stop_ids = g_->stop_ids;
    a.text.emplace(g_->tk, a.api.stop);
    if (a.api.logprobs) a.logprobs.emplace(g_->tk, true);
    a.start = clock_type::now();
    auto self = shared_from_this();
    a.gen = g_->client.submit(a.api.gen, [self, key](const TokensUpdate& u) {
      net::post(self->ws_.get_executor(), [self, key, u] { self->on_update(key, u); });
    });
    active_.emplace(key, std::move(a));
  }

  void on_update(const std::string& key, const TokensUpdate& u) {
    auto it = active_.find(key);
    if (it == active_.end()) return;
    Active& a = it->second;
    if (!u.tokens.empty() && !a.got_first) {
      a.got_first = true;
      a.first = clock_type::now();
    }
    a.tokens += static_cast<int64_t>(u.tokens.size());
    nlohmann::json lp;
    if (a.logprobs && !a.stopped) lp = a.logprobs->add(u.tokens, u.logprobs);
    std::string delta = a.text->push(u.tokens);
    if (a.text->stopped() && !a.stopped) {
      a.stopped = true;
      g_->client.cancel(a.gen);
    }
    if (u.finished() && u.finish != FinishReason::Error) delta += a.text->finish();
    const bool lp_new = lp.is_object() && !lp["content"].empty();
    if (!delta.empty() || lp_new) {
      nlohmann::json m{{"type", "delta"}, {"id", key}, {"content", delta}};
      if (lp_new) m["logprobs"] = std::move(lp);
      send(dump(m));
    }
    if (!u.finished()) return;
    if (u.finish == FinishReason::Error) {
      const int status = http_status_for(u.code);
      send_error(key, status, "generation failed: " + u.error);
      if (status >= 500) g_->metrics->request("ws_chat", status);
    } else {
      const auto end = clock_type::now();
      const double total = std::chrono::duration<double>(end - a.start).count();
      const double ttft = a.got_first ? std::chrono::duration<double>(a.first - a.start).count() : total;
      const double decode = std::chrono::duration<double>(end - (a.got_first ? a.first : a.start)).count();
      const int64_t p = static_cast<int64_t>(a.api.gen.prompt.size());
      g_->metrics->request("ws_chat", 200);
      g_->metrics->generation(p, a.tokens, ttft, total);
      send(dump({{"type", "done"},
                 {"id", key},
                 {"finish_reason", finish_reason_name(a.stopped ? FinishReason::Stop : u.finish)},
                 {"usage", {{"prompt_tokens", p},
                            {"completion_tokens", a.tokens},
                            {"total_tokens", p + a.tokens},
                            {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}}},
                 {"timings", {{"ttft_ms", ttft * 1e3},
                              {"total_ms", total * 1e3},
                              {"tokens_per_s", a.tokens > 1 && decode > 0 ? (a.tokens - 1) / decode : 0.0}}}}));
    }
    g_->give_slot(key_);
    active_.erase(it);
  }

  void send_error(const nlohmann::json& id, int status, const std::string& message) {
    if (status < 500) g_->metrics->request("ws_chat", status);
    send(dump({{"type", "error"}, {"id", id}, {"status", status}, {"message", message}}));
  }

  void send(std::string s) {
    if (closed_) return;
    // A slow reader must not grow memory without bound: drop the connection.
    if (queued_ + s.size() > kMaxQueuedBytes) {
      closed_ = true;
      ws_.async_close(websocket::close_reason(websocket::close_code::policy_error, "reader too slow"),
                      [self = shared_from_this()](beast::error_code) { self->shutdown(); });
      return;
    }
    queued_ += s.size();
    out_.push_back(std::move(s));
    if (out_.size() == 1) write();
  }

  void write() {
    ws_.text(true);
    ws_.async_write(net::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->queued_ -= self->out_.front().size();
      self->out_.pop_front();
      if (ec) return self->shutdown();
      if (!self->out_.empty()) self->write();
    });
  }

  // The socket is gone: cancel what it was waiting for (frees the KV cache).
  void shutdown() {
    closed_ = true;
    for (auto& [key, a] : active_) {
      g_->client.cancel(a.gen);
      g_->give_slot(key_);
    }
    active_.clear();
  }

  websocket::stream<beast::tcp_stream> ws_;
  std::shared_ptr<Gateway::Impl> g_;
  std::string key_;
  beast::flat_buffer in_;
  std::map<std::string, Active> active_;
  std::deque<std::string> out_;
  size_t queued_ = 0;
  bool closed_ = false;
};

}  // namespace

void start_websocket(tcp::socket socket, http::request<http::string_body> upgrade, std::shared_ptr<Gateway::Impl> g,
                     std::string api_key) {
  std::make_shared<WsChat>(std::move(socket), std::move(g), std::move(api_key))->start(std::move(upgrade));
}

}  // namespace moemesh
