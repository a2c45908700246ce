// libFuzzer target: one text frame of the WebSocket chat protocol, decoded as the
// gateway does before it looks at the socket's state.
#include <cstdlib>
#include <string_view>

#include "services/gateway/websocket_message.h"
#include "tests/fuzz/json_mutator.h"

using namespace moemesh;

namespace {

struct Env {
  std::shared_ptr<const tok::Tokenizer> tk = tok::Tokenizer::load(
      std::getenv("MOEMESH_TOKENIZER_DIR") ? std::getenv("MOEMESH_TOKENIZER_DIR") : MOEMESH_DEFAULT_TOKENIZER_DIR);
  tok::ChatTemplate tpl = tok::ChatTemplate::for_tokenizer(*tk);
  ApiLimits limits;
};

// As the gateway sends it: never failing on the client's bytes.
std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

bool valid_id(const std::string& id) { return !id.empty() && id.size() <= kMaxWsIdBytes; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Env env;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const WsMessage m = decode_ws_message(text, *env.tk, &env.tpl, env.limits);
  if (const auto* e = std::get_if<WsError>(&m)) {
    // The answer is JSON the client can parse, message included.
    if (e->status < 400 || e->status > 499) __builtin_trap();
    const auto back = nlohmann::json::parse(dump({{"type", "error"}, {"id", e->id}, {"status", e->status}, {"message", e->message}}));
    if (!back.at("message").is_string() || back.at("id") != e->id) __builtin_trap();
  } else if (const auto* p = std::get_if<WsPing>(&m)) {
    if (nlohmann::json::parse(dump({{"type", "pong"}, {"id", p->id}})).at("id") != p->id) __builtin_trap();
  } else if (const auto* c = std::get_if<WsCancel>(&m)) {
    if (!valid_id(c->id)) __builtin_trap();
  } else {
    const auto& chat = std::get<WsChatRequest>(m);
    if (!valid_id(chat.id) || !chat.api.chat || chat.api.gen.prompt.empty()) __builtin_trap();
    if (chat.api.gen.max_new_tokens < 1 || chat.api.gen.max_new_tokens > env.limits.max_tokens) __builtin_trap();
  }
  return 0;
}

// Half the mutations change one value of a JSON message.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::mt19937 rng(seed);
  if (rng() % 2 == 0)
    if (const auto out = fuzz::mutate_json(std::string(reinterpret_cast<const char*>(data), size), rng))
      if (const size_t n = fuzz::emit(*out, data, max_size)) return n;
  return LLVMFuzzerMutate(data, size, max_size);
}
