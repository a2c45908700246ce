#include "gateway.h"

#include <chrono>
#include <algorithm>
#include <deque>

#include <sys/socket.h>

#include <type_traits>

#include <cerrno>

#include "gateway_state.h"
#include "generation_body.h"
#include "choice_stream.h"
#include "tokenize_api.h"

namespace moemesh {

namespace {

std::string now_id(const char* prefix) {
  static std::atomic<uint64_t> n{1};
  return std::string(prefix) + std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "-" + std::to_string(n++);
}

// One client connection, plain (beast::tcp_stream) or TLS (TlsStream).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Session(tcp::socket s, std::shared_ptr<Gateway::Impl> g, std::shared_ptr<net::ssl::context> tls)
      : g_(std::move(g)), tls_(std::move(tls)), stream_(make_stream(std::move(s), tls_)) {}
  void start() {
    if constexpr (kTls) {
      // The handshake is bounded like any read: a client that never finishes it is dropped.
      lowest().expires_after(std::chrono::seconds(g_->opts.idle_timeout_s));
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->lowest().close();
        self->read();
      });
    } else {
      read();
    }
  }

 private:
  static Stream make_stream(tcp::socket s, const std::shared_ptr<net::ssl::context>& tls) {
    if constexpr (kTls) return Stream(beast::tcp_stream(std::move(s)), *tls);
    else return Stream(std::move(s));
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  using Request = http::request<http::string_body>;

  void read() {
    parser_.emplace();
    parser_->body_limit(g_->opts.max_body_bytes);
    lowest().expires_after(std::chrono::seconds(g_->opts.idle_timeout_s));
    http::async_read(stream_, buf_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      linger_ = true;  // the client may still be sending its body: read it away before closing
      return reply_error(ApiError(413, "the request body is larger than " + std::to_string(g_->opts.max_body_bytes) + " bytes"));
    }
    if (ec) return close();  // end of stream, timeout, garbage
    req_ = parser_->release();
    keep_alive_ = req_.keep_alive();
    try {
      try {
        route();
      } catch (const ApiError& e) {
        reply_error(e);
      } catch (const std::exception& e) {
        reply_error(ApiError(500, e.what(), "", "server_error"));
      }
    } catch (const std::exception& e) {
      // Nothing a client sends may take the server down: drop this connection only.
      spdlog::warn("gateway: {}", e.what());
      close();
    }
  }

  void route() {
    const std::string target(req_.target());
    const std::string path = target.substr(0, target.find('?'));
    route_ = path == "/v1/chat/completions" ? "chat" : path == "/v1/completions" ? "completions" : path == "/v1/models" ? "models"
           : path == "/tokenize" ? "tokenize" : path == "/detokenize" ? "detokenize"
           : path == "/healthz" ? "healthz" : path == "/readyz" ? "readyz" : path == "/metrics" ? "metrics" : path == "/" ? "page" : "other";
    if (path == "/healthz") return reply(200, "text/plain", "ok\n");
    if (path == "/metrics") {
      auto self = this->shared_from_this();
      g_->client.stats([self](const nlohmann::json& j) {
        net::post(self->stream_.get_executor(), [self, j] {
          try {
            self->g_->metrics->attention_stats(j);
          } catch (const std::exception& e) {
            spdlog::warn("gateway: the attention tier's stats: {} ({})", e.what(), j.dump());
          }
          self->reply(200, "text/plain; version=0.0.4", self->g_->metrics->serialize());
        });
      });
      return;
    }
    if (path == "/readyz") {
      if (!g_->ready) throw ApiError(503, "not ready", "", "unavailable");
      return reply(200, "text/plain", "ready\n");
    }
    if (path == "/" || path == "/index.html") {
      if (req_.method() != http::verb::get) throw ApiError(405, "use GET");
      return reply(200, "text/html; charset=utf-8", kChatPage);
    }
    if (path.rfind("/v1/", 0) == 0 || path == "/tokenize" || path == "/detokenize")
      authenticate(path == "/v1/chat/ws" && beast::websocket::is_upgrade(req_));
    if (path == "/tokenize" || path == "/detokenize") {
      if (req_.method() != http::verb::post) throw ApiError(405, "use POST");
      return reply(200, "application/json",
                   path == "/tokenize" ? tokenize_body(req_.body(), *g_->tk, g_->tpl ? &*g_->tpl : nullptr, g_->opts.limits, g_->opts.max_model_len)
                                       : detokenize_body(req_.body(), *g_->tk));
    }
    if (path == "/v1/chat/ws") {
      if (!beast::websocket::is_upgrade(req_)) throw ApiError(400, "/v1/chat/ws takes WebSocket upgrades only");
      if (!g_->ready) throw ApiError(503, g_->not_ready_reason(), "", "unavailable");
      lowest().expires_never();  // the read deadline must not follow the stream into the WebSocket
      return start_websocket(std::move(stream_), std::move(req_), g_, key_);
    }
    if (path == "/v1/models") {
      if (req_.method() != http::verb::get) throw ApiError(405, "use GET");
      nlohmann::json j{{"object", "list"},
                       {"data", {{{"id", g_->opts.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "moemesh"},
                                  {"max_model_len", g_->opts.max_model_len}}}}};
      return reply(200, "application/json", j.dump());
    }
    if (path == "/v1/chat/completions" || path == "/v1/completions") {
      if (req_.method() != http::verb::post) throw ApiError(405, "use POST");
      if (!g_->ready) throw ApiError(503, g_->not_ready_reason(), "", "unavailable");
      chat_ = path == "/v1/chat/completions";
      api_ = parse_generation_body(req_.body(), chat_, *g_->tk, g_->tpl ? &*g_->tpl : nullptr, g_->opts.limits);
      if (!api_.ignore_eos) api_.gen.stop_ids = g_->stop_ids;
      return generate();
    }
    throw ApiError(404, "no route for " + path, "", "not_found_error");
  }

  // Sets key_ to the key's label (never the key). A key in the query string is
  // taken only on the WebSocket upgrade, which browsers cannot give headers:
  // anywhere else it would end up in proxies' logs.
  void authenticate(bool upgrade) {
    if (g_->keys.empty()) return;
    const std::string auth(req_[http::field::authorization]);
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0) {
      if (auto label = g_->key_label(std::string_view(auth).substr(prefix.size()))) {
        key_ = *label;
        return;
      }
    }
    const std::string target(req_.target());
    // The query's api_key parameter, by exact name.
    size_t q = std::string::npos;
    for (size_t at = target.find('?'); at != std::string::npos; at = target.find('&', at + 1))
      if (target.compare(at + 1, 8, "api_key=") == 0) {
        q = at + 1;
        break;
      }
    if (q != std::string::npos) {
      if (!upgrade)
        throw ApiError(401, "an API key in the query string is taken only on the WebSocket upgrade (/v1/chat/ws); send Authorization: Bearer KEY",
                       "", "authentication_error");
      // Percent-decoded, as browsers encode it.
      const std::string raw = target.substr(q + 8, target.find('&', q) - q - 8);
      std::string presented;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
          presented += static_cast<char>(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          presented += raw[i];
        }
      }
      if (auto label = g_->key_label(presented)) {
        key_ = *label;
        return;
      }
    }
    throw ApiError(401, "a valid API key is required (Authorization: Bearer KEY)", "", "authentication_error");
  }

  void generate() {
    if (!g_->take_slot(key_)) {
      throw ApiError(429, "too many requests in flight (for this key or in all); retry later", "", "rate_limit_error");
    }
    holding_slot_ = true;
    id_ = now_id(chat_ ? "chatcmpl-" : "cmpl-");
    created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    choices_.clear();
    gen_ids_.clear();
    role_sent_.assign(static_cast<size_t>(api_.n), false);
    for (int i = 0; i < api_.n; ++i) choices_.emplace_back(g_->tk, api_);
    start_time_ = std::chrono::steady_clock::now();
    if (api_.stream) start_stream();
    auto self = this->shared_from_this();
    const uint64_t gen = ++next_gen_;
    for (int i = 0; i < api_.n; ++i) {
      GenerationRequest r = api_.gen;
      r.sampling.seed += static_cast<uint64_t>(i);
      gen_ids_.push_back(g_->client.submit(r, [self, gen, i](const TokensUpdate& u) {
        net::post(self->stream_.get_executor(), [self, u, gen, i] {
          // Updates of an earlier generation on this keep-alive connection (say the
          // cancellation after a stop string) must not answer the next request.
          if (gen == self->next_gen_) self->on_update(static_cast<size_t>(i), u);
        });
      }));
    }
    timer_.expires_after(std::chrono::seconds(g_->opts.total_timeout_s));
    timer_.async_wait([self](beast::error_code ec) {
      if (ec || self->done_) return;
      self->timed_out_ = true;
      self->cancel_all();
    });
    if (!api_.stream) watch_disconnect();
  }

  void cancel_all() {
    for (size_t i = 0; i < gen_ids_.size(); ++i)
      if (!choices_[i].ended()) g_->client.cancel(gen_ids_[i]);
  }

  // A whole-response request writes nothing until the end: notice a client that
  // hangs up meanwhile (readable with nothing to read) and stop its generation.
  void watch_disconnect() {
    lowest().socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->done_) return;
      char c;
      const ssize_t n = ::recv(self->lowest().socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return;  // a pipelined request: not a hang-up
      self->on_write_error();
    });
  }

  void release_slot() {
    if (holding_slot_) g_->give_slot(key_);
    timer_.cancel();
    holding_slot_ = false;
  }

  void on_update(size_t i, TokensUpdate u) {
    if (done_ || i >= choices_.size()) return;
    if (u.finish == FinishReason::Cancelled && timed_out_) {
      u.finish = FinishReason::Error;
      u.code = wire::ErrorCode::Timeout;
      u.error = "the request ran longer than " + std::to_string(g_->opts.total_timeout_s) + " s";
    }
    ChoiceStream& c = choices_[i];
    ChoiceStream::Piece piece = c.push(u);
    if (piece.cancel) g_->client.cancel(gen_ids_[i]);
    if (c.ended() && c.finish() == FinishReason::Error) {
      // One choice failed: the request fails, the other choices stop.
      done_ = true;
      cancel_all();
      release_slot();
      if (api_.stream) return stream_error(c.error());
      const int status = http_status_for(c.code());
      return reply_error(ApiError(status, "generation failed: " + c.error(), "", status < 500 ? "invalid_request_error" : "server_error"));
    }
    if (api_.stream) {
      if (c.any(piece)) push_event(chunk_json(i, piece, nullptr));
      if (piece.ended) push_event(chunk_json(i, {}, http_finish(c)));
    }
    if (!std::all_of(choices_.begin(), choices_.end(), [](const ChoiceStream& x) { return x.ended(); })) return;
    if (api_.stream) {
      if (api_.include_usage) {
        nlohmann::json j = base_json(chat_ ? "chat.completion.chunk" : "text_completion");
        j["choices"] = nlohmann::json::array();
        j["usage"] = usage();
        push_event(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
      push_raw("data: [DONE]\n\n");
      push_last();
    } else {
      nlohmann::json j = base_json(chat_ ? "chat.completion" : "text_completion");
      j["choices"] = nlohmann::json::array();
      for (size_t k = 0; k < choices_.size(); ++k) {
        const ChoiceStream& x = choices_[k];
        nlohmann::json choice{{"index", k}, {"finish_reason", http_finish(x)}, {"logprobs", x.logprobs()}};
        if (chat_) choice["message"] = message_json(x);
        else choice["text"] = x.text();
        j["choices"].push_back(std::move(choice));
      }
      j["usage"] = usage();
      reply(200, "application/json", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    done_ = true;
    release_slot();
    const auto end = std::chrono::steady_clock::now();
    auto first = end;
    for (const auto& x : choices_)
      if (x.first_token()) first = std::min(first, *x.first_token());
    g_->metrics->generation(static_cast<int64_t>(api_.gen.prompt.size()), completion_tokens(),
                            std::chrono::duration<double>(first - start_time_).count(),
                            std::chrono::duration<double>(end - start_time_).count());
    if (api_.stream) g_->metrics->request(route_, 200);
  }

  // OpenAI has no "cancelled": an answer the server cut short (drain) reads "stop";
  // an answer that is calls reads "tool_calls".
  static const char* http_finish(const ChoiceStream& c) {
    const FinishReason f = c.finish() == FinishReason::Cancelled ? FinishReason::Stop : c.finish();
    return f == FinishReason::Stop && c.called() ? "tool_calls" : finish_reason_name(f);
  }

  nlohmann::json message_json(const ChoiceStream& x) const {
    nlohmann::json m{{"role", "assistant"}, {"content", x.called() && x.text().empty() ? nlohmann::json() : nlohmann::json(x.text())}};
    if (api_.reasoning) m["reasoning_content"] = x.reasoning();
    if (x.called()) m["tool_calls"] = x.tool_calls();
    return m;
  }

  int64_t completion_tokens() const {
    int64_t n = 0;
    for (const auto& c : choices_) n += c.tokens();
    return n;
  }

  // The prompt counts once however many choices; cached_tokens is the first choice's.
  nlohmann::json usage() const {
    const int64_t p = static_cast<int64_t>(api_.gen.prompt.size()), n = completion_tokens();
    int64_t reasoning = 0;
    for (const auto& c : choices_) reasoning += c.reasoning_tokens();
    nlohmann::json u{{"prompt_tokens", p},
                     {"completion_tokens", n},
                     {"total_tokens", p + n},
                     {"prompt_tokens_details", {{"cached_tokens", choices_.empty() ? 0 : choices_[0].cached_tokens()}}}};
    if (chat_) u["completion_tokens_details"] = {{"reasoning_tokens", reasoning}};
    return u;
  }

  nlohmann::json base_json(const char* object) const {
    return {{"id", id_}, {"object", object}, {"created", created_}, {"model", api_.model.empty() ? g_->opts.model_name : api_.model}};
  }

  std::string chunk_json(size_t index, const ChoiceStream::Piece& piece, const nlohmann::json& finish) {
    nlohmann::json j = base_json(chat_ ? "chat.completion.chunk" : "text_completion");
    nlohmann::json choice{{"index", index}, {"finish_reason", finish}, {"logprobs", piece.logprobs}};
    const bool first = !role_sent_[index];
    if (chat_) {
      auto& d = choice["delta"] = nlohmann::json::object();
      if (first) d["role"] = "assistant";
      // A first chunk that opens a call has no content yet: null, as OpenAI sends it.
      if (!piece.text.empty() || first) d["content"] = piece.text.empty() && !piece.tool_calls.is_null() ? nlohmann::json() : nlohmann::json(piece.text);
      if (!piece.reasoning.empty()) d["reasoning_content"] = piece.reasoning;
      if (!piece.tool_calls.is_null()) d["tool_calls"] = piece.tool_calls;
    } else {
      choice["text"] = piece.text;
    }
    role_sent_[index] = true;
    // Not `= {choice}`: a one-element braced list of a json is a copy for clang, an array for gcc.
    j["choices"] = nlohmann::json::array();
    j["choices"].push_back(std::move(choice));
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  // --- streaming: headers, then chunks, written one at a time ---
  void start_stream() {
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, req_.version());
    res->set(http::field::content_type, "text/event-stream");
    if (kTls && g_->opts.hsts) res->set(http::field::strict_transport_security, "max-age=31536000");
    res->set(http::field::cache_control, "no-cache");
    res->keep_alive(keep_alive_);
    res->chunked(true);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    writing_ = true;
    lowest().expires_never();
    http::async_write_header(stream_, *sr, [self = this->shared_from_this(), res, sr](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->on_write_error();
      self->flush();
    });
  }
  void push_event(const std::string& json) { push_raw("data: " + json + "\n\n"); }
  void push_raw(std::string s) {
    // A slow reader must not grow memory without bound.
    if (queued_bytes_ > (8u << 20)) return on_write_error();
    queued_bytes_ += s.size();
    out_.push_back({std::move(s), false});
    flush();
  }
  void push_last() {
    out_.push_back({"", true});
    flush();
  }
  void flush() {
    if (writing_ || out_.empty() || broken_) return;
    writing_ = true;
    auto item = std::make_shared<std::pair<std::string, bool>>(std::move(out_.front()));
    out_.pop_front();
    auto done = [self = this->shared_from_this(), item](beast::error_code ec, size_t) {
      self->writing_ = false;
      self->queued_bytes_ -= item->first.size();
      if (ec) return self->on_write_error();
      if (item->second) return self->after_response();
      self->flush();
    };
    if (item->second) net::async_write(stream_, http::make_chunk_last(), done);
    else net::async_write(stream_, http::make_chunk(net::buffer(item->first)), done);
  }
  void stream_error(const std::string& what) {
    push_event(nlohmann::json{{"error", {{"message", "generation failed: " + what}, {"type", "server_error"}}}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace));
    push_raw("data: [DONE]\n\n");
    push_last();
  }
  void on_write_error() {
    // The client went away: stop the generation, free its cache.
    broken_ = true;
    if (!done_) cancel_all();
    done_ = true;
    release_slot();
    close();
  }

  // --- whole responses ---
  void reply(int status, const char* type, std::string body) {
    g_->metrics->request(route_, status);
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), req_.version());
    res->set(http::field::content_type, type);
    res->set(http::field::server, "moemesh");
    if (kTls && g_->opts.hsts) res->set(http::field::strict_transport_security, "max-age=31536000");
    res->keep_alive(keep_alive_);
    res->body() = std::move(body);
    res->prepare_payload();
    lowest().expires_after(std::chrono::seconds(g_->opts.idle_timeout_s));  // a write deadline of its own, not the read's
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->after_response();
    });
  }
  void reply_error(const ApiError& e) { reply(e.status(), "application/json", error_body(e)); }

  void after_response() {
    if (!keep_alive_) return close();
    done_ = false;
    timed_out_ = false;
    choices_.clear();
    gen_ids_.clear();
    read();
  }
  void close() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (linger_) return drain();
    lowest().close();
  }
  // A lingering close: discard what the client still sends (bounded in bytes and
  // time) so it reads our answer instead of a reset connection.
  void drain() {
    lowest().expires_after(std::chrono::seconds(5));
    stream_.async_read_some(net::buffer(scratch_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > (64u << 20)) return self->lowest().close();
      self->drain();
    });
  }

  // Declared first, so destroyed last: the last session alive may hold the last
  // reference to the gateway, whose io_context the stream's socket must close on.
  std::shared_ptr<Gateway::Impl> g_;
  std::shared_ptr<net::ssl::context> tls_;  // outlives stream_, which holds a reference
  Stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request req_;
  bool keep_alive_ = true, chat_ = true, done_ = false, writing_ = false, broken_ = false;
  bool holding_slot_ = false, linger_ = false;
  std::string route_ = "other", key_;
  net::steady_timer timer_{stream_.get_executor()};
  bool timed_out_ = false;
  std::chrono::steady_clock::time_point start_time_;
  std::array<char, 16384> scratch_;
  size_t drained_ = 0;
  ApiRequest api_;
  std::string id_;
  int64_t created_ = 0;
  uint64_t next_gen_ = 0;            // this connection's requests, counted: late updates of an earlier one are dropped
  std::vector<ChoiceStream> choices_;  // one per choice (n)
  std::vector<uint64_t> gen_ids_;      // their generations
  std::vector<bool> role_sent_;        // streaming: the choice's first chunk (with the role) went out
  std::deque<std::pair<std::string, bool>> out_;
  size_t queued_bytes_ = 0;
};

}  // namespace

void Gateway::Impl::accept() {
  acceptor->async_accept(net::make_strand(ioc), [self = this->shared_from_this()](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      if (auto tls = self->tls()) std::make_shared<Session<TlsStream>>(std::move(s), self, std::move(tls))->start();
      else std::make_shared<Session<beast::tcp_stream>>(std::move(s), self, nullptr)->start();
    }
    if (self->acceptor->is_open()) self->accept();
  });
}

void Gateway::Impl::load_tls() {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 |
                   net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  try {
    ctx->use_certificate_chain_file(opts.tls_cert);
  } catch (const std::exception& e) {
    throw std::runtime_error("gateway: cannot load the TLS certificate " + opts.tls_cert + ": " + e.what());
  }
  try {
    ctx->use_private_key_file(opts.tls_key, net::ssl::context::pem);
  } catch (const std::exception& e) {
    throw std::runtime_error("gateway: cannot load the TLS key " + opts.tls_key + ": " + e.what());
  }
  std::lock_guard<std::mutex> lock(tls_mu);
  tls_ctx = std::move(ctx);
}

Gateway::Gateway(GatewayOptions opts, std::shared_ptr<const tok::Tokenizer> tokenizer, GenerationClient& client,
                 std::vector<int32_t> stop_ids)
    : impl_(std::make_shared<Impl>(std::move(opts), std::move(tokenizer), client, std::move(stop_ids))) {}

Gateway::~Gateway() { stop(); }

uint16_t Gateway::start() {
  auto& g = *impl_;
  const tcp::endpoint ep(net::ip::make_address(g.opts.host), g.opts.port);
  g.acceptor.emplace(g.ioc);
  g.acceptor->open(ep.protocol());
  g.acceptor->set_option(net::socket_base::reuse_address(true));
  g.acceptor->bind(ep);
  g.acceptor->listen();
  g.metrics = std::make_unique<GatewayMetrics>(g.opts.host + ":" + std::to_string(g.acceptor->local_endpoint().port()));
  g.accept();
  if (g.tls()) {
    // SIGHUP loads the certificate and key again (renewed files); connections
    // made from then on use them, those open keep theirs. A bad file keeps the old ones.
    g.sighup.emplace(g.ioc, SIGHUP);
    g.rearm_sighup = [&g] {
      g.sighup->async_wait([&g](beast::error_code ec, int) {
        if (ec) return;
        try {
          g.load_tls();
          spdlog::info("gateway: TLS certificate {} loaded again", g.opts.tls_cert);
        } catch (const std::exception& e) {
          spdlog::error("{}; keeping the one loaded before", e.what());
        }
        g.rearm_sighup();
      });
    };
    g.rearm_sighup();
  }
  for (int i = 0; i < std::max(1, g.opts.threads); ++i) g.threads.emplace_back([&g] { g.ioc.run(); });
  return g.acceptor->local_endpoint().port();
}

void Gateway::stop() {
  auto& g = *impl_;
  if (g.threads.empty()) return;
  net::post(g.ioc, [&g] {
    beast::error_code ec;
    g.acceptor->close(ec);
    if (g.sighup) g.sighup->cancel(ec);
  });
  g.ioc.stop();
  for (auto& t : g.threads) t.join();
  g.threads.clear();
  g.ioc.shutdown();  // the handlers left (sessions still connected, the acceptor's) go, and with them their hold on `g`
}

void Gateway::set_ready(bool ready) { impl_->ready = ready; }

bool Gateway::drain(std::chrono::milliseconds deadline) {
  auto& g = *impl_;
  g.draining = true;
  g.ready = false;  // new generations get 503 and /readyz fails: balancers move on
  const auto until = std::chrono::steady_clock::now() + deadline;
  spdlog::info("gateway: draining ({} generations in flight)", g.inflight.load());
  while (g.inflight > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return g.inflight == 0;
}

}  // namespace moemesh
