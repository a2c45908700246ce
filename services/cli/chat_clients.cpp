#include "chat_clients.h"

#include <chrono>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/beast/websocket.hpp>

namespace moemesh::cli {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

// The waits between pieces of one answer.
struct Clocks {
  Clock::time_point start = Clock::now(), last{};
  void piece(ChatOutcome& o) {
    const auto now = Clock::now();
    if (last == Clock::time_point{}) o.first_ms = std::chrono::duration<double, std::milli>(now - start).count();
    else o.max_gap_ms = std::max(o.max_gap_ms, std::chrono::duration<double, std::milli>(now - last).count());
    last = now;
  }
};

bool whole(const std::string& finish) { return finish == "stop" || finish == "length"; }

}  // namespace

ChatOutcome chat_sse(const std::string& host, uint16_t port, nlohmann::json body) {
  ChatOutcome o;
  body["stream"] = true;
  try {
    boost::asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.connect(boost::asio::ip::tcp::resolver(ioc).resolve(host, std::to_string(port)));
    http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
    req.set(http::field::host, host);
    req.set(http::field::content_type, "application/json");
    req.body() = body.dump();
    req.prepare_payload();
    Clocks clocks;
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    http::read_header(stream, buf, parser);
    const int status = static_cast<int>(parser.get().result_int());
    std::string pending, all;
    char chunk[4096];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      beast::error_code ec;
      http::read_some(stream, buf, parser, ec);
      if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
      const size_t got = sizeof(chunk) - parser.get().body().size;
      pending.append(chunk, got);
      all.append(chunk, got);
      for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (line.rfind("data: ", 0) != 0 || line == "data: [DONE]") continue;
        const auto j = nlohmann::json::parse(line.substr(6), nullptr, false);
        if (j.is_object() && j.contains("error")) o.error = j["error"].dump();
        if (!j.is_object() || !j.contains("choices") || j["choices"].empty()) continue;
        const auto& c = j["choices"][0];
        const std::string piece = c.contains("delta") ? c["delta"].value("content", std::string()) : std::string();
        if (!piece.empty()) {
          clocks.piece(o);
          o.text += piece;
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) o.finish = c["finish_reason"];
      }
    }
    if (status != 200) o.error = "HTTP " + std::to_string(status) + ": " + all.substr(0, 300);
  } catch (const std::exception& e) {
    o.error = e.what();
  }
  o.ok = o.error.empty() && whole(o.finish);
  if (o.error.empty() && !o.ok) o.error = "finish_reason '" + o.finish + "'";
  return o;
}

ChatOutcome chat_websocket(const std::string& host, uint16_t port, nlohmann::json body) {
  ChatOutcome o;
  body["type"] = "chat";
  body["id"] = "c";
  try {
    boost::asio::io_context ioc;
    beast::websocket::stream<beast::tcp_stream> ws(ioc);
    beast::get_lowest_layer(ws).connect(boost::asio::ip::tcp::resolver(ioc).resolve(host, std::to_string(port)));
    ws.handshake(host + ":" + std::to_string(port), "/v1/chat/ws");
    Clocks clocks;
    ws.write(boost::asio::buffer(body.dump()));
    for (;;) {
      beast::flat_buffer buf;
      ws.read(buf);
      const auto j = nlohmann::json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
      if (!j.is_object()) continue;
      const std::string type = j.value("type", std::string());
      if (type == "delta") {
        const std::string piece = j.value("content", std::string());
        if (!piece.empty()) {
          clocks.piece(o);
          o.text += piece;
        }
      } else if (type == "done") {
        o.finish = j.value("finish_reason", std::string());
        if (j.contains("usage") && j["usage"].is_object()) o.completion_tokens = j["usage"].value("completion_tokens", int64_t{0});
        break;
      } else if (type == "error") {
        o.error = j.dump();
        break;
      }
    }
    beast::error_code ec;
    ws.close(beast::websocket::close_code::normal, ec);
  } catch (const std::exception& e) {
    o.error = e.what();
  }
  o.ok = o.error.empty() && whole(o.finish);
  if (o.error.empty() && !o.ok) o.error = "finish_reason '" + o.finish + "'";
  return o;
}

}  // namespace moemesh::cli
