// One message of the WebSocket chat protocol (docs/API.md) decoded apart from
// the socket: a ping, a cancel or a chat by id, or the error to answer with.
// What depends on the socket (ids running, requests at once, slots) is checked after.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "openai_api.h"

namespace moemesh {

struct WsPing {
  nlohmann::json id;  // any JSON (null when absent): the pong repeats it
};
struct WsCancel {
  std::string id;
};
struct WsChatRequest {
  std::string id;
  ApiRequest api;
};
struct WsError {
  nlohmann::json id;  // null when the message had no usable id
  int status = 400;
  std::string message;  // may quote the client's bytes: dump with error_handler_t::replace
};
using WsMessage = std::variant<WsPing, WsCancel, WsChatRequest, WsError>;

// Ids are strings of 1..kMaxWsIdBytes bytes (pings excepted).
constexpr size_t kMaxWsIdBytes = 128;

// `text` is one text frame; `tpl` null: the model has no chat template.
WsMessage decode_ws_message(std::string_view text, const tok::Tokenizer& tk, const tok::ChatTemplate* tpl,
                            const ApiLimits& limits);

}  // namespace moemesh
