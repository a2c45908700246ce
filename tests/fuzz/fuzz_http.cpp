// libFuzzer target: bytes from a client as the gateway reads them. Beast's request
// parser (with the gateway's body limit) takes one request after another while
// they keep the connection alive; POSTs to /v1/chat/completions and
// /v1/completions have their body handled as the gateway does. Input that is
// not an HTTP request is taken as a bare body of both routes.
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "services/gateway/gateway.h"
#include "services/gateway/generation_body.h"
#include "tests/fuzz/json_mutator.h"

namespace http = boost::beast::http;
using namespace moemesh;

namespace {

struct Env {
  std::shared_ptr<const tok::Tokenizer> tk = tok::Tokenizer::load(
      std::getenv("MOEMESH_TOKENIZER_DIR") ? std::getenv("MOEMESH_TOKENIZER_DIR") : MOEMESH_DEFAULT_TOKENIZER_DIR);
  tok::ChatTemplate tpl = tok::ChatTemplate::for_tokenizer(*tk);
  GatewayOptions opts;
};

// What the client reads back: a 4xx with an OpenAI error object.
void check_error(const ApiError& e) {
  if (e.status() < 400 || e.status() > 499) __builtin_trap();
  const auto j = nlohmann::json::parse(error_body(e));  // throws (a finding) when not JSON
  if (!j.at("error").at("message").is_string() || !j.at("error").at("type").is_string()) __builtin_trap();
}

void check_request(const ApiRequest& r, bool chat, const ApiLimits& limits) {
  if (r.chat != chat || r.gen.prompt.empty()) __builtin_trap();
  if (r.gen.max_new_tokens < 1 || r.gen.max_new_tokens > limits.max_tokens) __builtin_trap();
  if (r.stop.size() > limits.max_stop) __builtin_trap();
  for (const auto& s : r.stop)
    if (s.empty()) __builtin_trap();
}

void handle_body(const Env& env, std::string_view body, bool chat) {
  try {
    check_request(parse_generation_body(body, chat, *env.tk, &env.tpl, env.opts.limits), chat, env.opts.limits);
  } catch (const ApiError& e) {
    check_error(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Env env;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  int requests = 0;
  while (!rest.empty()) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(env.opts.max_body_bytes);
    parser.eager(true);
    boost::beast::error_code ec;
    while (!ec && !parser.is_done() && !rest.empty()) {
      const size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(used);
      if (used == 0 && !ec) break;
    }
    if (ec == http::error::body_limit) {
      check_error(ApiError(413, "the request body is larger than " + std::to_string(env.opts.max_body_bytes) + " bytes"));
      return 0;
    }
    if (ec || !parser.is_done()) break;  // the gateway closes (garbage) or waits for more
    ++requests;
    const auto& req = parser.get();
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    if (req.method() == http::verb::post && (path == "/v1/chat/completions" || path == "/v1/completions"))
      handle_body(env, req.body(), path == "/v1/chat/completions");
    if (!req.keep_alive()) return 0;
  }
  if (requests == 0) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    handle_body(env, body, true);
    handle_body(env, body, false);
  }
  return 0;
}

// Half the mutations change one value of a JSON body: a bare one, or one after
// the head of a request, whose Content-Length is made to match again.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::mt19937 rng(seed);
  if (rng() % 2 == 0) {
    const std::string in(reinterpret_cast<const char*>(data), size);
    const size_t head_end = in.find("\r\n\r\n");
    std::string head = head_end == std::string::npos ? "" : in.substr(0, head_end + 4);
    if (const auto body = fuzz::mutate_json(in.substr(head.size()), rng)) {
      const std::string field = "Content-Length: ";
      const size_t at = head.find(field);
      if (at != std::string::npos) {
        const size_t from = at + field.size();
        head.replace(from, head.find_first_not_of("0123456789", from) - from, std::to_string(body->size()));
      }
      if (const size_t n = fuzz::emit(head + *body, data, max_size)) return n;
    }
  }
  return LLVMFuzzerMutate(data, size, max_size);
}
