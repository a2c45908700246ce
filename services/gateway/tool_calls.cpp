#include "tool_calls.h"

#include <cctype>
#include <cstdio>
#include <set>

#include "core/grammar/grammar.h"
#include "core/grammar/json_schema.h"

namespace moemesh {

namespace {

constexpr size_t kMaxTools = 128;

const char* kCallsBegin = "<｜tool▁calls▁begin｜>";
const char* kCallsEnd = "<｜tool▁calls▁end｜>";
const char* kCallBegin = "<｜tool▁call▁begin｜>";
const char* kCallEnd = "<｜tool▁call▁end｜>";
const char* kSep = "<｜tool▁sep｜>";

// OpenAI's rule for function names: what a client may rely on parsing back.
bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

void only(const nlohmann::json& o, const std::string& where, std::initializer_list<const char*> keys) {
  for (const auto& item : o.items()) {
    bool ok = false;
    for (const char* k : keys) ok = ok || item.key() == k;
    if (!ok) throw ToolError(where + "." + item.key(), "unknown parameter '" + where + "." + item.key() + "'");
  }
}

void escape_to(std::string& out, const std::string& s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    char buf[16];
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) {
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence (nlohmann::json holds valid UTF-8) as \u escapes, UTF-16 pairs above the BMP.
    const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    uint32_t cp = c & (len == 4 ? 0x07 : len == 3 ? 0x0f : 0x1f);
    for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      std::snprintf(buf, sizeof buf, "\\u%04x", cp);
    }
    out += buf;
    i += static_cast<size_t>(len);
  }
  out += '"';
}

void python_json_to(std::string& out, const nlohmann::ordered_json& v) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [k, x] : v.items()) {
      if (!first) out += ", ";
      first = false;
      escape_to(out, k);
      out += ": ";
      python_json_to(out, x);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      python_json_to(out, v[i]);
    }
    out += ']';
  } else if (v.is_string()) {
    escape_to(out, v.get_ref<const std::string&>());
  } else if (v.is_boolean()) {
    out += v.get<bool>() ? "true" : "false";
  } else if (v.is_null()) {
    out += "null";
  } else {
    out += v.dump();
  }
}

}  // namespace

std::optional<ToolFormat> tool_format_named(std::string_view name) {
  if (name == "deepseek_v3") return ToolFormat::DeepSeekV3;
  if (name == "deepseek_v31") return ToolFormat::DeepSeekV31;
  return std::nullopt;
}

const char* tool_format_name(ToolFormat f) { return f == ToolFormat::DeepSeekV3 ? "deepseek_v3" : "deepseek_v31"; }

std::string python_json(const nlohmann::ordered_json& v) {
  std::string out;
  python_json_to(out, v);
  return out;
}

ToolRequest parse_tool_request(const nlohmann::json& j, const nlohmann::ordered_json& ordered) {
  ToolRequest r;
  if (j.contains("tools") && !j["tools"].is_null()) {
    const auto& tools = j["tools"];
    if (!tools.is_array()) throw ToolError("tools", "tools must be an array of functions");
    if (tools.size() > kMaxTools) throw ToolError("tools", "at most " + std::to_string(kMaxTools) + " tools per request");
    std::set<std::string> names;
    for (size_t i = 0; i < tools.size(); ++i) {
      const std::string at = "tools[" + std::to_string(i) + "]";
      const auto& t = tools[i];
      if (!t.is_object()) throw ToolError(at, at + " must be an object");
      only(t, at, {"type", "function"});
      if (!t.contains("type") || t["type"] != "function") throw ToolError(at + ".type", at + ".type must be \"function\"");
      if (!t.contains("function") || !t["function"].is_object()) throw ToolError(at + ".function", at + " needs a function object");
      const auto& f = t["function"];
      only(f, at + ".function", {"name", "description", "parameters", "strict"});
      ToolFunction fn;
      if (!f.contains("name") || !f["name"].is_string() || !valid_name(f["name"]))
        throw ToolError(at + ".function.name", at + ".function.name must be 1 to 64 letters, digits, '_' or '-'");
      fn.name = f["name"];
      if (!names.insert(fn.name).second) throw ToolError(at + ".function.name", "two tools are named '" + fn.name + "'");
      if (f.contains("description") && !f["description"].is_null()) {
        if (!f["description"].is_string()) throw ToolError(at + ".function.description", at + ".function.description must be a string");
        fn.description = f["description"];
      }
      if (f.contains("strict") && !f["strict"].is_null()) {
        if (!f["strict"].is_boolean()) throw ToolError(at + ".function.strict", at + ".function.strict must be a boolean");
        fn.strict = f["strict"];
      }
      // The schema in the order the client wrote it (the order the model is asked to follow).
      const nlohmann::ordered_json* of = nullptr;
      if (ordered.is_object() && ordered.contains("tools") && ordered["tools"].is_array() && ordered["tools"].size() == tools.size()) {
        const auto& ot = ordered["tools"][i];
        if (ot.is_object() && ot.contains("function") && ot["function"].is_object()) of = &ot["function"];
      }
      if (f.contains("parameters") && !f["parameters"].is_null()) {
        if (!f["parameters"].is_object()) throw ToolError(at + ".function.parameters", at + ".function.parameters must be a JSON schema object");
        fn.parameters = of && of->contains("parameters") ? (*of)["parameters"] : nlohmann::ordered_json::parse(f["parameters"].dump());
      } else {
        fn.parameters = {{"type", "object"}, {"properties", nlohmann::ordered_json::object()}};
      }
      r.tools.push_back(std::move(fn));
    }
  }
  if (j.contains("tool_choice") && !j["tool_choice"].is_null()) {
    const auto& c = j["tool_choice"];
    if (c == "none") r.choice = ToolRequest::Choice::None;
    else if (c == "auto") r.choice = ToolRequest::Choice::Auto;
    else if (c == "required") r.choice = ToolRequest::Choice::Required;
    else if (c.is_object()) {
      only(c, "tool_choice", {"type", "function"});
      if (!c.contains("type") || c["type"] != "function") throw ToolError("tool_choice.type", "tool_choice.type must be \"function\"");
      if (!c.contains("function") || !c["function"].is_object() || !c["function"].contains("name") || !c["function"]["name"].is_string())
        throw ToolError("tool_choice.function.name", "tool_choice.function needs the name of a function");
      only(c["function"], "tool_choice.function", {"name"});
      r.choice = ToolRequest::Choice::Named;
      r.named = c["function"]["name"];
      bool known = false;
      for (const auto& t : r.tools) known = known || t.name == r.named;
      if (!known) throw ToolError("tool_choice.function.name", "tool_choice names '" + r.named + "', which is not among the tools");
    } else {
      throw ToolError("tool_choice", "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    if (r.forced() && r.tools.empty()) throw ToolError("tool_choice", "tool_choice requires a call but the request has no tools");
  }
  if (j.contains("parallel_tool_calls") && !j["parallel_tool_calls"].is_null()) {
    if (!j["parallel_tool_calls"].is_boolean()) throw ToolError("parallel_tool_calls", "parallel_tool_calls must be a boolean");
    r.parallel = j["parallel_tool_calls"];
  }
  return r;
}

std::string tools_system_prompt(const ToolRequest& r, ToolFormat f) {
  std::string s = "## Tools\nYou have access to the following tools:\n\n";
  for (const auto& t : r.tools) {
    s += "### " + t.name + "\nDescription: " + t.description + "\n\nParameters: " + python_json(t.parameters) + "\n\n";
  }
  s += "IMPORTANT: ALWAYS adhere to this exact format for tool use:\n";
  if (f == ToolFormat::DeepSeekV3) {
    s += std::string(kCallsBegin) + kCallBegin + "function" + kSep + "tool_call_name\n```json\ntool_call_arguments\n```" + kCallEnd +
         "{{additional_tool_calls}}" + kCallsEnd + "\n\nWhere:\n\n"
         "- `tool_call_name` must be an exact match to one of the available tools\n"
         "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
         "- For multiple tool calls, put each on a new line after the previous one's " + kCallEnd + "\n";
  } else {
    s += std::string(kCallsBegin) + kCallBegin + "tool_call_name" + kSep + "tool_call_arguments" + kCallEnd + "{{additional_tool_calls}}" +
         kCallsEnd + "\n\nWhere:\n\n"
         "- `tool_call_name` must be an exact match to one of the available tools\n"
         "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
         "- For multiple tool calls, chain them directly without separators or spaces\n";
  }
  if (!r.parallel) s += "- Call at most one tool\n";
  if (r.choice == ToolRequest::Choice::Required) s += "- You must call at least one tool\n";
  if (r.choice == ToolRequest::Choice::Named) s += "- You must call the tool `" + r.named + "`\n";
  return s;
}

std::string tool_call_grammar(const ToolRequest& r, ToolFormat f) {
  using grammar::literal;
  std::string rules, alts;
  for (size_t i = 0; i < r.tools.size(); ++i) {
    const auto& t = r.tools[i];
    if (r.choice == ToolRequest::Choice::Named && t.name != r.named) continue;
    const std::string p = "t" + std::to_string(i) + "-";
    if (r.forced() || t.strict) {
      try {
        rules += grammar::json_schema_rules(t.parameters, p);
      } catch (const grammar::SchemaError& e) {
        const std::string where = "tools[" + std::to_string(i) + "].function.parameters" + (e.where().empty() ? "" : "." + e.where());
        throw ToolError(where, std::string(e.what()) + " (at " + where + ")");
      }
    } else {
      rules += p + "root ::= json-object\n";
    }
    const std::string head = f == ToolFormat::DeepSeekV3 ? literal("function" + std::string(kSep) + t.name + "\n```json\n")
                                                         : literal(t.name + kSep);
    const std::string tail = f == ToolFormat::DeepSeekV3 ? literal(std::string("\n```") + kCallEnd) : literal(kCallEnd);
    alts += std::string(alts.empty() ? "" : " | ") + head + " " + p + "root " + tail;
  }
  const std::string more = f == ToolFormat::DeepSeekV3 ? literal("\n") + " call" : "call";
  const std::string calls = literal(kCallsBegin) + " call" + (r.parallel ? " ( " + more + " )*" : "") + " " + literal(kCallsEnd);
  std::string g;
  if (r.forced()) {
    g = "root ::= " + calls + "\n";
  } else {
    // Text that never begins a call marker (both begin with it), then maybe the calls.
    g = "root ::= free-0 ( " + calls + " )?\n" + grammar::text_without("free", "<｜tool▁call", false);
  }
  g += "call ::= " + literal(kCallBegin) + " ( " + alts + " )\n";
  return g + grammar::json_common_rules() + rules;
}

}  // namespace moemesh
