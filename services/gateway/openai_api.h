// The OpenAI-compatible request and response bodies: chat completions and
// completions parsed into generation requests (with the model's chat template),
// and the JSON the API answers with, errors included.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/tokenizer.h"
#include "model/scheduler.h"
#include "services/gateway/api.h"
#include "tool_calls.h"

namespace moemesh {

// A request the API refuses: HTTP status, message, the parameter at fault.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = {}, std::string type = "invalid_request_error")
      : std::runtime_error(message), status_(status), param_(std::move(param)), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string param_, type_;
};

// {"error": {"message", "type", "param", "code"}}
std::string error_body(const ApiError& e);

// Request JSON (a body, a WebSocket message) nests at most this deep: copying or
// dumping a value recurses once per level, and a 1 MiB message could nest 500 k deep.
constexpr int kMaxJsonDepth = 128;

// Parses request JSON: nlohmann::json::parse_error when it is not JSON,
// ApiError(400) when it nests deeper than kMaxJsonDepth.
nlohmann::json parse_request_json(std::string_view text);

struct ApiRequest {
  GenerationRequest gen;
  bool chat = true;
  bool stream = false;
  bool include_usage = false;
  std::string model;
  std::vector<std::string> stop;  // stop strings, matched on the decoded text
  bool ignore_eos = false;        // generate max_tokens whatever the model says (benchmarks)
  bool logprobs = false;          // log-probabilities of the generated tokens (gen.top_logprobs alternatives)
  int top_logprobs = 0;
  // Choices of the one prompt: each its own generation, choice i seeded with
  // gen.sampling.seed + i (the prompt is prefilled once: Scheduler::submit).
  int n = 1;
  ToolRequest tools;          // chat: the functions offered and what is asked of them
  ToolFormat tool_format = ToolFormat::DeepSeekV3;
  bool reasoning = false;     // <think>…</think> goes to reasoning_content
  bool think_opened = false;  // the prompt ends inside a think block (R1's template)
};

// The token ids of j["messages"] rendered by the chat template (the field checks
// of the chat route). Throws ApiError(400, ...) naming the field.
// `tools_prompt`: a system prompt section added after the request's own (tool definitions).
std::vector<int32_t> chat_prompt(const nlohmann::json& j, const tok::Tokenizer& tk, const tok::ChatTemplate& tpl,
                                 const ApiLimits& limits, bool add_generation_prompt, const std::string& tools_prompt = "");

// Request JSON `text` with its keys in the order written (nlohmann::json sorts
// them; a schema's property order is the order the model is asked to write
// them in), when it holds a schema (response_format, tools); else null.
nlohmann::ordered_json request_in_order(std::string_view text);

// Throws ApiError(400, ...) naming the field. `ordered`: request_in_order of
// the same JSON (null: schema properties in alphabetical order).
ApiRequest parse_chat_request(const nlohmann::json& j, const tok::Tokenizer& tk, const tok::ChatTemplate& tpl,
                              const ApiLimits& limits, const nlohmann::ordered_json& ordered = nullptr);
ApiRequest parse_completion_request(const nlohmann::json& j, const tok::Tokenizer& tk, const ApiLimits& limits,
                                    const nlohmann::ordered_json& ordered = nullptr);

}  // namespace moemesh
