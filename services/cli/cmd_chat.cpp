// moemesh chat: a terminal chat client over the gateway's WebSocket protocol
// (docs/API.md). Keeps the conversation; each line typed is a turn.
#include <iostream>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"

namespace moemesh::cli {

void add_chat_command(CLI::App& app) {
  struct Args {
    std::string url = "http://127.0.0.1:8000", api_key, message, system;
    int64_t max_tokens = 256;
    double temperature = 0.0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("chat", "chat with a running moemesh gateway in the terminal");
  cmd->add_option("--url", a->url, "the gateway (as printed by moemesh up)");
  cmd->add_option("--api-key", a->api_key, "API key, when the gateway requires one");
  cmd->add_option("--message", a->message, "send this one message, print the answer and exit");
  cmd->add_option("--system", a->system, "a system prompt");
  cmd->add_option("--max-tokens", a->max_tokens, "answer length limit")->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", a->temperature, "0 = greedy")->check(CLI::Range(0.0, 2.0));
  cmd->callback([a] {
    namespace net = boost::asio;
    namespace beast = boost::beast;
    const std::string prefix = "http://";
    if (a->url.rfind(prefix, 0) != 0) throw CLI::ValidationError("--url", "must start with http://");
    std::string hostport = a->url.substr(prefix.size());
    hostport = hostport.substr(0, hostport.find('/'));
    const size_t colon = hostport.rfind(':');
    const std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
    const std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);

    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    beast::websocket::stream<net::ip::tcp::socket> ws(ioc);
    net::connect(ws.next_layer(), resolver.resolve(host, port));
    ws.set_option(beast::websocket::stream_base::decorator([&](beast::websocket::request_type& r) {
      if (!a->api_key.empty()) r.set(beast::http::field::authorization, "Bearer " + a->api_key);
    }));
    ws.handshake(hostport, "/v1/chat/ws");

    nlohmann::json history = nlohmann::json::array();
    if (!a->system.empty()) history.push_back({{"role", "system"}, {"content", a->system}});
    int turn = 0;
    auto ask = [&](const std::string& text) {
      history.push_back({{"role", "user"}, {"content", text}});
      const std::string id = "t" + std::to_string(++turn);
      ws.text(true);
      ws.write(net::buffer(nlohmann::json{{"type", "chat"}, {"id", id}, {"messages", history}, {"max_tokens", a->max_tokens},
                                          {"temperature", a->temperature}}
                               .dump()));
      std::string answer;
      for (;;) {
        beast::flat_buffer buf;
        ws.read(buf);
        const auto m = nlohmann::json::parse(beast::buffers_to_string(buf.data()));
        if (m.value("id", nlohmann::json()) != id) continue;
        const std::string type = m.value("type", "");
        if (type == "delta") {
          answer += m["content"].get<std::string>();
          std::cout << m["content"].get<std::string>() << std::flush;
        } else if (type == "done") {
          std::cout << "\n";
          const auto& t = m["timings"];
          std::cerr << "[" << m["usage"]["completion_tokens"] << " tokens, " << t["tokens_per_s"].get<double>() << " tokens/s, first token "
                    << t["ttft_ms"].get<double>() << " ms, " << m["finish_reason"].get<std::string>() << "]\n";
          history.push_back({{"role", "assistant"}, {"content", answer}});
          return;
        } else if (type == "error") {
          throw std::runtime_error(m.value("message", std::string("error")));
        }
      }
    };
    if (!a->message.empty()) {
      ask(a->message);
    } else {
      std::string line;
      std::cerr << "> " << std::flush;
      while (std::getline(std::cin, line)) {
        if (!line.empty()) ask(line);
        std::cerr << "> " << std::flush;
      }
    }
    beast::error_code ec;
    ws.close(beast::websocket::close_code::normal, ec);
  });
}

}  // namespace moemesh::cli
