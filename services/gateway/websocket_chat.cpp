// The WebSocket chat protocol (docs/API.md): chat requests with ids, several at
// once on one socket, streamed deltas, a final message with usage and timings,
// cancel by id, ping/pong. Closing the socket cancels what is still running.
#include <algorithm>
#include <chrono>
#include <deque>
#include <map>

#include "gateway_state.h"
#include "choice_stream.h"
#include "websocket_message.h"

namespace moemesh {
namespace {

namespace websocket = beast::websocket;
using clock_type = std::chrono::steady_clock;

constexpr size_t kMaxActivePerSocket = 16;
constexpr size_t kMaxQueuedBytes = 8u << 20;

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// Over a plain (beast::tcp_stream) or TLS (TlsStream) connection.
template <class Next>
class WsChat : public std::enable_shared_from_this<WsChat<Next>> {
 public:
  WsChat(Next s, std::shared_ptr<Gateway::Impl> g, std::string key) : g_(std::move(g)), ws_(std::move(s)), key_(std::move(key)) {}

  void start(http::request<http::string_body> upgrade) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(g_->opts.max_body_bytes);
    ws_.async_accept(upgrade, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->read();
    });
  }

 private:
  struct Active {
    ApiRequest api;
    std::vector<uint64_t> gens;          // one generation per choice (n)
    std::vector<ChoiceStream> choices;
    clock_type::time_point start;
    void cancel(GenerationClient& client) const {
      for (size_t i = 0; i < gens.size(); ++i)
        if (!choices[i].ended()) client.cancel(gens[i]);
    }
  };

  void read() {
    ws_.async_read(in_, [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
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
      it->second.cancel(g_->client);
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
    for (int i = 0; i < a.api.n; ++i) a.choices.emplace_back(g_->tk, a.api);
    a.start = clock_type::now();
    auto self = this->shared_from_this();
    for (int i = 0; i < a.api.n; ++i) {
      GenerationRequest r = a.api.gen;
      r.sampling.seed += static_cast<uint64_t>(i);
      a.gens.push_back(g_->client.submit(r, [self, key, i](const TokensUpdate& u) {
        net::post(self->ws_.get_executor(), [self, key, u, i] { self->on_update(key, static_cast<size_t>(i), u); });
      }));
    }
    active_.emplace(key, std::move(a));
  }

  void on_update(const std::string& key, size_t i, const TokensUpdate& u) {
    auto it = active_.find(key);
    if (it == active_.end() || i >= it->second.choices.size()) return;
    Active& a = it->second;
    ChoiceStream& c = a.choices[i];
    ChoiceStream::Piece piece = c.push(u);
    if (piece.cancel) g_->client.cancel(a.gens[i]);
    if (c.any(piece)) {
      nlohmann::json m{{"type", "delta"}, {"id", key}, {"index", i}, {"content", piece.text}};
      if (!piece.reasoning.empty()) m["reasoning_content"] = std::move(piece.reasoning);
      if (!piece.tool_calls.is_null()) m["tool_calls"] = std::move(piece.tool_calls);
      if (!piece.logprobs.is_null()) m["logprobs"] = std::move(piece.logprobs);
      send(dump(m));
    }
    if (c.ended() && c.finish() == FinishReason::Error) {
      // One choice failed: the request fails, the other choices stop.
      a.cancel(g_->client);
      const int status = http_status_for(c.code());
      send_error(key, status, "generation failed: " + c.error());
      if (status >= 500) g_->metrics->request("ws_chat", status);
      g_->give_slot(key_);
      active_.erase(it);
      return;
    }
    if (!std::all_of(a.choices.begin(), a.choices.end(), [](const ChoiceStream& x) { return x.ended(); })) return;
    const auto end = clock_type::now();
    auto first = end;
    int64_t tokens = 0, reasoning = 0;
    nlohmann::json choices = nlohmann::json::array();
    for (size_t k = 0; k < a.choices.size(); ++k) {
      const ChoiceStream& x = a.choices[k];
      tokens += x.tokens();
      reasoning += x.reasoning_tokens();
      if (x.first_token()) first = std::min(first, *x.first_token());
      nlohmann::json choice{{"index", k}, {"finish_reason", ws_finish(x)}};
      // The whole answer's calls, as the deltas built them.
      if (x.called()) choice["tool_calls"] = x.tool_calls();
      choices.push_back(std::move(choice));
    }
    const bool got_first = first != end;
    const double total = std::chrono::duration<double>(end - a.start).count();
    const double ttft = got_first ? std::chrono::duration<double>(first - a.start).count() : total;
    const double decode = std::chrono::duration<double>(end - (got_first ? first : a.start)).count();
    const int64_t p = static_cast<int64_t>(a.api.gen.prompt.size());
    // Decode rate per choice: they run side by side.
    const int64_t per_choice = tokens / static_cast<int64_t>(a.choices.size());
    g_->metrics->request("ws_chat", 200);
    g_->metrics->generation(p, tokens, ttft, total);
    send(dump({{"type", "done"},
               {"id", key},
               {"finish_reason", ws_finish(a.choices[0])},
               {"choices", std::move(choices)},
               {"usage", {{"prompt_tokens", p},
                          {"completion_tokens", tokens},
                          {"total_tokens", p + tokens},
                          {"prompt_tokens_details", {{"cached_tokens", a.choices[0].cached_tokens()}}},
                          {"completion_tokens_details", {{"reasoning_tokens", reasoning}}}}},
               {"timings", {{"ttft_ms", ttft * 1e3},
                            {"total_ms", total * 1e3},
                            {"tokens_per_s", per_choice > 1 && decode > 0 ? (per_choice - 1) / decode : 0.0}}}}));
    g_->give_slot(key_);
    active_.erase(it);
  }

  static const char* ws_finish(const ChoiceStream& x) {
    return x.finish() == FinishReason::Stop && x.called() ? "tool_calls" : finish_reason_name(x.finish());
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
                      [self = this->shared_from_this()](beast::error_code) { self->shutdown(); });
      return;
    }
    queued_ += s.size();
    out_.push_back(std::move(s));
    if (out_.size() == 1) write();
  }

  void write() {
    ws_.text(true);
    ws_.async_write(net::buffer(out_.front()), [self = this->shared_from_this()](beast::error_code ec, size_t) {
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
      a.cancel(g_->client);
      g_->give_slot(key_);
    }
    active_.clear();
  }

  // Declared first, so destroyed last: this may hold the last reference to the
  // gateway, whose io_context the stream's socket must close on.
  std::shared_ptr<Gateway::Impl> g_;
  websocket::stream<Next> ws_;
  std::string key_;
  beast::flat_buffer in_;
  std::map<std::string, Active> active_;
  std::deque<std::string> out_;
  size_t queued_ = 0;
  bool closed_ = false;
};

}  // namespace

void start_websocket(beast::tcp_stream stream, http::request<http::string_body> upgrade, std::shared_ptr<Gateway::Impl> g,
                     std::string api_key) {
  std::make_shared<WsChat<beast::tcp_stream>>(std::move(stream), std::move(g), std::move(api_key))->start(std::move(upgrade));
}

void start_websocket(TlsStream stream, http::request<http::string_body> upgrade, std::shared_ptr<Gateway::Impl> g,
                     std::string api_key) {
  std::make_shared<WsChat<TlsStream>>(std::move(stream), std::move(g), std::move(api_key))->start(std::move(upgrade));
}

}  // namespace moemesh
