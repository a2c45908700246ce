// Tool calls on the request side: the functions a request offers (`tools`),
// what it asks of them (`tool_choice`, `parallel_tool_calls`), how they are put
// to the model (a system prompt section in DeepSeek's layout) and, when a call
// is required, the grammar that makes the model write one well-formed call whose
// arguments validate against the function's schema. docs/API.md has the formats.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "services/gateway/api.h"

namespace moemesh {

// How a model writes its calls (ToolFormat, api.h; the output parser and the grammar follow it):
//   DeepSeekV3:  <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>
//                then "\n" and the next call, ..., <｜tool▁calls▁end｜>
//   DeepSeekV31: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
std::optional<ToolFormat> tool_format_named(std::string_view name);  // deepseek_v3, deepseek_v31
const char* tool_format_name(ToolFormat f);

// A request's tools part the API refuses: the parameter path and the message.
class ToolError : public std::runtime_error {
 public:
  ToolError(std::string param, const std::string& message) : std::runtime_error(message), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

struct ToolFunction {
  std::string name, description;
  nlohmann::ordered_json parameters;  // a JSON schema, properties in the order written
  bool strict = false;                // its arguments follow the schema even when a call is not required
};

struct ToolRequest {
  enum class Choice { Auto, None, Required, Named };
  std::vector<ToolFunction> tools;
  Choice choice = Choice::Auto;
  std::string named;     // Choice::Named: the function
  bool parallel = true;  // several calls in one answer
  // The model's calls are parsed out of its text (else the text is left as it is).
  bool parses() const { return !tools.empty() && choice != Choice::None; }
  // The answer must be a call.
  bool forced() const { return choice == Choice::Required || choice == Choice::Named; }
  // Decoding follows tool_call_grammar: a call is forced, or a function is
  // strict (free text, then its calls with arguments that follow the schemas).
  bool constrained() const {
    if (forced()) return true;
    if (choice != Choice::Auto) return false;
    for (const auto& t : tools)
      if (t.strict) return true;
    return false;
  }
};

// The tools, tool_choice and parallel_tool_calls fields of a chat request
// (`ordered`: the same request with its keys in the order written, or null).
// Throws ToolError naming the field.
ToolRequest parse_tool_request(const nlohmann::json& request, const nlohmann::ordered_json& ordered);

// The system prompt section that tells the model its functions and how to call
// them, in DeepSeek's layout (## Tools, ### NAME, Description, Parameters).
std::string tools_system_prompt(const ToolRequest& r, ToolFormat f);

// A grammar (core/grammar) of the answer, in format `f`: with a call forced,
// only calls (one, or several with parallel) of any offered function or the
// named one, arguments following the function's schema; with tool_choice auto
// and strict functions, free text without call markup and then, optionally,
// the calls, strict ones' arguments following their schemas (the others' any
// JSON object). Throws ToolError when a schema cannot be constrained (naming
// the parameters path).
std::string tool_call_grammar(const ToolRequest& r, ToolFormat f);

// Python's json.dumps (", " and ": " separators, non-ASCII as \u escapes): how
// DeepSeek's tool prompts print a schema.
std::string python_json(const nlohmann::ordered_json& v);

}  // namespace moemesh
