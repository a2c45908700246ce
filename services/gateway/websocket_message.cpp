#include "websocket_message.h"

namespace moemesh {

WsMessage decode_ws_message(std::string_view text, const tok::Tokenizer& tk, const tok::ChatTemplate* tpl,
                            const ApiLimits& limits) {
  nlohmann::json m;
  try {
    m = parse_request_json(text);
  } catch (const nlohmann::json::exception& e) {
    return WsError{nullptr, 400, std::string("not valid JSON: ") + e.what()};
  } catch (const ApiError& e) {
    return WsError{nullptr, e.status(), e.what()};
  }
  if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) return WsError{nullptr, 400, "a message needs a string \"type\""};
  const std::string type = m["type"];
  nlohmann::json id = m.contains("id") ? m["id"] : nlohmann::json();
  if (type == "ping") return WsPing{std::move(id)};
  if (!id.is_string() || id.get<std::string>().empty() || id.get<std::string>().size() > kMaxWsIdBytes)
    return WsError{std::move(id), 400, "\"id\" must be a string of 1.." + std::to_string(kMaxWsIdBytes) + " characters"};
  std::string key = id;
  if (type == "cancel") return WsCancel{std::move(key)};
  if (type != "chat") return WsError{std::move(id), 400, "unknown type '" + type + "' (chat, cancel, ping)"};
  if (!tpl) return WsError{std::move(id), 400, "this model has no chat template"};
  // The chat route's parameters, exactly: the envelope's own fields aside.
  nlohmann::json body = std::move(m);
  body.erase("type");
  body.erase("id");
  if (body.contains("stream") && body["stream"] == false)
    return WsError{std::move(id), 400, "'stream': the WebSocket chat always streams (send it true or leave it out)"};
  // `done` always carries the usage: an include_usage of false could not be honoured.
  if (body.contains("stream_options"))
    return WsError{std::move(id), 400, "'stream_options': the WebSocket chat always sends usage in its done message; leave it out"};
  try {
    const nlohmann::ordered_json ordered = body.contains("response_format") || body.contains("tools") ? request_in_order(text) : nullptr;
    return WsChatRequest{std::move(key), parse_chat_request(body, tk, *tpl, limits, ordered)};
  } catch (const ApiError& e) {
    return WsError{std::move(id), e.status(), e.what()};
  }
}

}  // namespace moemesh
