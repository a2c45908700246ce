#include "tokenize_api.h"

namespace moemesh {
namespace {

nlohmann::json object_body(std::string_view body) {
  nlohmann::json j;
  try {
    j = parse_request_json(body);
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

void only(const nlohmann::json& j, std::initializer_list<const char*> fields) {
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    if (std::find_if(fields.begin(), fields.end(), [&](const char* f) { return k == f; }) == fields.end())
      throw ApiError(400, "unknown parameter '" + k + "'", k);
  }
}

bool flag(const nlohmann::json& j, const char* f, bool fallback) {
  if (!j.contains(f) || j[f].is_null()) return fallback;
  if (!j[f].is_boolean()) throw ApiError(400, std::string(f) + " must be a boolean", f);
  return j[f].get<bool>();
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

std::string tokenize_body(std::string_view body, const tok::Tokenizer& tk, const tok::ChatTemplate* tpl,
                          const ApiLimits& limits, int64_t max_model_len) {
  const nlohmann::json j = object_body(body);
  std::vector<int32_t> ids;
  if (j.contains("messages")) {
    only(j, {"model", "messages", "add_generation_prompt", "return_token_strs", "tools", "tool_choice", "parallel_tool_calls"});
    if (!tpl) throw ApiError(400, "this model has no chat template: send a prompt", "messages");
    // The prompt a chat request with the same tools gets.
    std::string tools_prompt;
    try {
      const ToolRequest tools = parse_tool_request(j, j.contains("tools") ? request_in_order(body) : nullptr);
      if (tools.parses()) tools_prompt = tools_system_prompt(tools, limits.tool_format);
    } catch (const ToolError& e) {
      throw ApiError(400, e.what(), e.param());
    }
    ids = chat_prompt(j, tk, *tpl, limits, flag(j, "add_generation_prompt", true), tools_prompt);
  } else {
    only(j, {"model", "prompt", "add_special_tokens", "return_token_strs"});
    if (!j.contains("prompt") || !j["prompt"].is_string()) throw ApiError(400, "prompt (a string) or messages is required", "prompt");
    ids = tk.encode(j["prompt"].get<std::string>(), flag(j, "add_special_tokens", true));
  }
  nlohmann::json out{{"count", ids.size()}, {"max_model_len", max_model_len}, {"tokens", ids}};
  if (flag(j, "return_token_strs", false)) {
    nlohmann::json strs = nlohmann::json::array();
    for (int32_t id : ids) strs.push_back(tk.token_bytes(id));
    out["token_strs"] = std::move(strs);
  }
  return dump(out);
}

std::string detokenize_body(std::string_view body, const tok::Tokenizer& tk) {
  const nlohmann::json j = object_body(body);
  only(j, {"model", "tokens"});
  if (!j.contains("tokens") || !j["tokens"].is_array()) throw ApiError(400, "tokens must be an array of token ids", "tokens");
  std::vector<int32_t> ids;
  for (const auto& v : j["tokens"]) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= static_cast<int64_t>(tk.vocab_size()))
      throw ApiError(400, "tokens holds " + v.dump() + ", not a token id of this model (0.." + std::to_string(tk.vocab_size() - 1) + ")",
                     "tokens");
    ids.push_back(v.get<int32_t>());
  }
  return dump({{"prompt", tk.decode(ids)}});
}

}  // namespace moemesh
