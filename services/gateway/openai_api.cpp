#include "openai_api.h"

#include <random>

#include "core/grammar/grammar.h"
#include "core/grammar/json_schema.h"

namespace moemesh {

std::string error_body(const ApiError& e) {
  nlohmann::json j{{"error", {{"message", e.what()}, {"type", e.type()}, {"param", e.param().empty() ? nlohmann::json() : nlohmann::json(e.param())}, {"code", nullptr}}}};
  // Messages can quote the client's bytes (a JSON parse error does): never fail on them.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json parse_request_json(std::string_view text) {
  return nlohmann::json::parse(text, [](int depth, nlohmann::json::parse_event_t event, const nlohmann::json&) {
    const bool opens = event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) throw ApiError(400, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  });
}

namespace {

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

// Every top-level field a request may carry. A field that is not here is
// refused by name (as OpenAI does): a parameter accepted and ignored would let
// the client believe it worked. docs/API.md lists the same.
enum class Field { Works, NoEffect, OnlyDefault };
struct FieldRule {
  const char* name;
  Field kind;
  bool chat, completion;
  const char* why = "";  // OnlyDefault: what is missing
};
const FieldRule kFields[] = {
    {"model", Field::Works, true, true},
    {"messages", Field::Works, true, false},
    {"prompt", Field::Works, false, true},
    {"max_tokens", Field::Works, true, true},
    {"max_completion_tokens", Field::Works, true, false},
    {"temperature", Field::Works, true, true},
    {"top_p", Field::Works, true, true},
    {"top_k", Field::Works, true, true},
    {"seed", Field::Works, true, true},
    {"stop", Field::Works, true, true},
    {"stream", Field::Works, true, true},
    {"stream_options", Field::Works, true, true},
    // Change nothing about what is generated.
    {"user", Field::NoEffect, true, true},
    {"metadata", Field::NoEffect, true, false},
    {"store", Field::NoEffect, true, false},
    {"service_tier", Field::NoEffect, true, false},
    {"n", Field::Works, true, true},
    // Not served: accepted only with the value that asks for nothing.
    {"best_of", Field::OnlyDefault, false, true, "candidates are not ranked by likelihood; use n"},
    {"logprobs", Field::Works, true, true},
    {"top_logprobs", Field::Works, true, false},
    {"echo", Field::OnlyDefault, false, true, "the prompt is not echoed"},
    {"suffix", Field::OnlyDefault, false, true, "no insertion after a suffix"},
    {"presence_penalty", Field::Works, true, true},
    {"frequency_penalty", Field::Works, true, true},
    {"repetition_penalty", Field::Works, true, true},
    {"logit_bias", Field::Works, true, true},
    {"min_p", Field::Works, true, true},
    {"min_tokens", Field::Works, true, true},
    {"ignore_eos", Field::Works, true, true},
    {"response_format", Field::Works, true, true},
    {"tools", Field::Works, true, false},
    {"tool_choice", Field::Works, true, false},
    {"parallel_tool_calls", Field::Works, true, false},
    // Extensions: decoding follows a grammar (docs/STRUCTURED_OUTPUT.md); the
    // think block split off as reasoning_content or not (SGLang's name).
    {"grammar", Field::Works, true, true},
    {"separate_reasoning", Field::Works, true, false},
};

// The value of an OnlyDefault field that asks for nothing.
bool is_default(const std::string& name, const nlohmann::json& v) {
  if (v.is_null()) return true;
  if (name == "best_of") return v.is_number_integer() && v.get<int64_t>() == 1;
  if (name == "echo") return v.is_boolean() && !v.get<bool>();
  return false;
}

void check_fields(const nlohmann::json& j, bool chat) {
  for (const auto& [name, value] : j.items()) {
    const FieldRule* rule = nullptr;
    for (const auto& f : kFields)
      if (name == f.name && (chat ? f.chat : f.completion)) rule = &f;
    if (!rule)
      throw bad(name, "unknown parameter '" + name + "' for " + (chat ? "chat completions" : "completions") + " (docs/API.md lists them)");
    if (rule->kind == Field::NoEffect && name == "user" && !value.is_null() && !value.is_string())
      throw bad(name, "user must be a string");
    if (rule->kind == Field::OnlyDefault && !is_default(name, value))
      throw bad(name, "'" + name + "' is not supported: " + rule->why + " (docs/API.md)");
  }
}

// response_format: text, json_object, or json_schema {name, schema, strict, description}
// compiled to the grammar the attention role constrains decoding with.
void response_format(const nlohmann::json& f, ApiRequest& r, const nlohmann::ordered_json& request) {
  // The schema as written, when the request came in order.
  nlohmann::ordered_json ordered;
  if (request.is_object() && request.contains("response_format") && request["response_format"].is_object()) {
    const auto& of = request["response_format"];
    if (of.contains("json_schema") && of["json_schema"].is_object() && of["json_schema"].contains("schema")) ordered = of["json_schema"]["schema"];
  }
  const std::string at = "response_format";
  if (!f.is_object() || !f.contains("type") || !f["type"].is_string())
    throw bad(at, "response_format must be an object with a type (text, json_object, json_schema)");
  const std::string type = f["type"];
  auto only = [&](const nlohmann::json& o, const std::string& where, std::initializer_list<const char*> keys) {
    for (const auto& item : o.items()) {
      bool ok = false;
      for (const char* k : keys) ok = ok || item.key() == k;
      if (!ok) throw bad(where + "." + item.key(), "unknown parameter '" + where + "." + item.key() + "'");
    }
  };
  if (type == "text") {
    only(f, at, {"type"});
    return;
  }
  if (type == "json_object") {
    only(f, at, {"type"});
    r.gen.grammar = grammar::json_object_grammar();
    return;
  }
  if (type != "json_schema") throw bad(at + ".type", "response_format.type must be text, json_object or json_schema");
  only(f, at, {"type", "json_schema"});
  if (!f.contains("json_schema") || !f["json_schema"].is_object())
    throw bad(at + ".json_schema", "response_format.json_schema must be an object with the schema");
  const auto& js = f["json_schema"];
  only(js, at + ".json_schema", {"name", "schema", "strict", "description"});
  if (!js.contains("name") || !js["name"].is_string()) throw bad(at + ".json_schema.name", "response_format.json_schema.name must be a string");
  if (js.contains("strict") && !js["strict"].is_boolean() && !js["strict"].is_null())
    throw bad(at + ".json_schema.strict", "response_format.json_schema.strict must be a boolean");
  // strict or not, the output follows the schema exactly: never looser.
  const nlohmann::json schema = js.contains("schema") ? js["schema"] : nlohmann::json::object();
  try {
    r.gen.grammar = ordered.is_null() ? grammar::json_schema_grammar(schema) : grammar::json_schema_grammar(ordered);
  } catch (const grammar::SchemaError& e) {
    const std::string where = at + ".json_schema.schema" + (e.where().empty() ? "" : "." + e.where());
    throw bad(where, std::string(e.what()) + " (at " + where + ")");
  }
}

void common(const nlohmann::json& j, ApiRequest& r, const ApiLimits& limits, size_t vocab, const nlohmann::ordered_json& ordered) {
  if (j.contains("model")) {
    if (!j["model"].is_string()) throw bad("model", "model must be a string");
    r.model = j["model"];
  }
  r.gen.max_new_tokens = limits.default_max_tokens;
  for (const char* f : {"max_tokens", "max_completion_tokens"}) {
    if (!j.contains(f) || j[f].is_null()) continue;
    if (!j[f].is_number_integer()) throw bad(f, std::string(f) + " must be an integer");
    const int64_t n = j[f].get<int64_t>();
    if (n < 1 || n > limits.max_tokens)
      throw bad(f, std::string(f) + " must be between 1 and " + std::to_string(limits.max_tokens) + ", got " + std::to_string(n));
    r.gen.max_new_tokens = n;
  }
  auto number = [&](const char* f, double lo, double hi, auto& out) {
    if (!j.contains(f) || j[f].is_null()) return;
    if (!j[f].is_number()) throw bad(f, std::string(f) + " must be a number");
    const double v = j[f].get<double>();
    if (!(v >= lo && v <= hi)) throw bad(f, std::string(f) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    out = static_cast<std::decay_t<decltype(out)>>(v);
  };
  number("temperature", 0.0, 2.0, r.gen.sampling.temperature);
  number("top_p", 1e-6, 1.0, r.gen.sampling.top_p);
  number("top_k", 0.0, 1e6, r.gen.sampling.top_k);
  number("min_p", 0.0, 1.0, r.gen.sampling.min_p);
  number("presence_penalty", -2.0, 2.0, r.gen.adjust.presence_penalty);
  number("frequency_penalty", -2.0, 2.0, r.gen.adjust.frequency_penalty);
  if (j.contains("repetition_penalty") && !j["repetition_penalty"].is_null()) {
    number("repetition_penalty", 1e-6, 10.0, r.gen.adjust.repetition_penalty);
  }
  if (j.contains("logit_bias") && !j["logit_bias"].is_null()) {
    const auto& b = j["logit_bias"];
    if (!b.is_object()) throw bad("logit_bias", "logit_bias must be an object of token id (as a string) to bias");
    if (b.size() > kMaxLogitBias) throw bad("logit_bias", "logit_bias takes at most " + std::to_string(kMaxLogitBias) + " tokens");
    for (const auto& [key, v] : b.items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || key.empty() || id < 0 || static_cast<unsigned long long>(id) >= vocab)
        throw bad("logit_bias", "logit_bias key '" + key + "' is not a token id of this model (0.." + std::to_string(vocab - 1) + ")");
      if (!v.is_number() || !(v.get<double>() >= -100.0 && v.get<double>() <= 100.0))
        throw bad("logit_bias", "logit_bias values must be numbers between -100 and 100");
      r.gen.adjust.logit_bias.emplace_back(static_cast<int32_t>(id), v.get<float>());
    }
  }
  if (j.contains("response_format") && !j["response_format"].is_null()) response_format(j["response_format"], r, ordered);
  if (j.contains("grammar") && !j["grammar"].is_null()) {
    if (!j["grammar"].is_string()) throw bad("grammar", "grammar must be a string (the grammar's text, docs/STRUCTURED_OUTPUT.md)");
    if (!r.gen.grammar.empty()) throw bad("grammar", "grammar and response_format both constrain the answer: give one of them");
    try {
      grammar::Grammar::parse(j["grammar"].get<std::string>());
    } catch (const grammar::GrammarError& e) {
      throw bad("grammar", e.what());
    }
    r.gen.grammar = j["grammar"];
  }
  if (j.contains("n") && !j["n"].is_null()) {
    if (!j["n"].is_number_integer() || j["n"].get<int64_t>() < 1 || j["n"].get<int64_t>() > limits.max_n)
      throw bad("n", "n must be an integer between 1 and " + std::to_string(limits.max_n));
    r.n = j["n"].get<int>();
  }
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) throw bad("seed", "seed must be an integer");
    r.gen.sampling.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
  } else {
    // No seed: a fresh one, so that sampled answers differ from request to request.
    static thread_local std::mt19937_64 fresh{std::random_device{}()};
    r.gen.sampling.seed = fresh();
  }
  // Log-probabilities: chat takes logprobs (bool) and top_logprobs; completions
  // logprobs as the number of alternatives.
  if (j.contains("logprobs") && !j["logprobs"].is_null()) {
    const auto& v = j["logprobs"];
    if (r.chat) {
      if (!v.is_boolean()) throw bad("logprobs", "logprobs must be a boolean");
      r.logprobs = v.get<bool>();
    } else {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTopLogprobs)
        throw bad("logprobs", "logprobs must be an integer between 0 and " + std::to_string(kMaxTopLogprobs) + " (alternatives per token)");
      r.logprobs = true;
      r.top_logprobs = v.get<int>();
    }
  }
  if (r.chat && j.contains("top_logprobs") && !j["top_logprobs"].is_null()) {
    const auto& v = j["top_logprobs"];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTopLogprobs)
      throw bad("top_logprobs", "top_logprobs must be an integer between 0 and " + std::to_string(kMaxTopLogprobs));
    if (!r.logprobs) throw bad("top_logprobs", "top_logprobs needs logprobs: true");
    r.top_logprobs = v.get<int>();
  }
  r.gen.top_logprobs = r.logprobs ? r.top_logprobs : -1;
  if (j.contains("min_tokens") && !j["min_tokens"].is_null()) {
    if (!j["min_tokens"].is_number_integer()) throw bad("min_tokens", "min_tokens must be an integer");
    const int64_t n = j["min_tokens"].get<int64_t>();
    if (n < 0 || n > r.gen.max_new_tokens)
      throw bad("min_tokens", "min_tokens must be between 0 and max_tokens (" + std::to_string(r.gen.max_new_tokens) + ")");
    r.gen.min_tokens = n;
  }
  if (j.contains("ignore_eos") && !j["ignore_eos"].is_null()) {
    if (!j["ignore_eos"].is_boolean()) throw bad("ignore_eos", "ignore_eos must be a boolean");
    r.ignore_eos = j["ignore_eos"].get<bool>();
  }
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) throw bad("stream", "stream must be a boolean");
    r.stream = j["stream"];
  }
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    const auto& o = j["stream_options"];
    if (!o.is_object()) throw bad("stream_options", "stream_options must be an object");
    for (const auto& [k, _] : o.items())
      if (k != "include_usage") throw bad("stream_options." + k, "unknown parameter 'stream_options." + k + "'");
    if (o.contains("include_usage") && !o["include_usage"].is_null()) {
      if (!o["include_usage"].is_boolean()) throw bad("stream_options.include_usage", "stream_options.include_usage must be a boolean");
      r.include_usage = o["include_usage"];
    }
  }
  if (j.contains("stop") && !j["stop"].is_null()) {
    const auto& s = j["stop"];
    if (s.is_string()) r.stop.push_back(s);
    else if (s.is_array() && s.size() <= limits.max_stop) {
      for (const auto& x : s) {
        if (!x.is_string()) throw bad("stop", "stop must be a string or an array of strings");
        r.stop.push_back(x);
      }
    } else {
      throw bad("stop", "stop must be a string or an array of at most " + std::to_string(limits.max_stop) + " strings");
    }
    for (const auto& x : r.stop)
      if (x.empty()) throw bad("stop", "stop strings must not be empty");
  }
}

}  // namespace

std::vector<int32_t> chat_prompt(const nlohmann::json& j, const tok::Tokenizer& tk, const tok::ChatTemplate& tpl,
                                 const ApiLimits& limits, bool add_generation_prompt, const std::string& tools_prompt) {
  if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
    throw bad("messages", "messages must be a non-empty array");
  if (j["messages"].size() > limits.max_messages)
    throw bad("messages", "at most " + std::to_string(limits.max_messages) + " messages per request");
  nlohmann::json msgs = nlohmann::json::array();
  for (size_t i = 0; i < j["messages"].size(); ++i) {
    const auto& m = j["messages"][i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) throw bad(where + ".role", where + " needs a string role");
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool")
      throw bad(where + ".role", "unknown role '" + role + "' (system, developer, user, assistant, tool)");
    for (const auto& [k, _] : m.items()) {
      // reasoning_content of an earlier answer: taken and left out of the
      // prompt, as DeepSeek-R1's template leaves out earlier reasoning.
      const bool taken = k == "role" || k == "content" || (role == "assistant" && (k == "tool_calls" || k == "reasoning_content")) ||
                         (role == "tool" && k == "tool_call_id");
      if (!taken) throw bad(where + "." + k, "unknown message field '" + k + "' in " + where + " (docs/API.md lists the message fields)");
    }
    const bool calls = role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null();
    std::string content;
    const bool no_content = !m.contains("content") || m["content"].is_null();
    if (no_content && !calls) {
      throw bad(where + ".content", where + " needs content");
    } else if (no_content) {
    } else if (m["content"].is_string()) {
      content = m["content"];
    } else if (m["content"].is_array()) {
      for (const auto& part : m["content"]) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") || !part["text"].is_string())
          throw bad(where + ".content", "only text content parts are supported");
        content += part["text"].get<std::string>();
      }
    } else {
      throw bad(where + ".content", where + ".content must be a string or an array of text parts");
    }
    if (m.contains("reasoning_content") && !m["reasoning_content"].is_null() && !m["reasoning_content"].is_string())
      throw bad(where + ".reasoning_content", where + ".reasoning_content must be a string");
    if (role == "tool" && m.contains("tool_call_id") && !m["tool_call_id"].is_null() && !m["tool_call_id"].is_string())
      throw bad(where + ".tool_call_id", where + ".tool_call_id must be a string");
    if (!calls) {
      msgs.push_back({{"role", role == "developer" ? "system" : role}, {"content", content}});
      continue;
    }
    // DeepSeek-V3's template renders an assistant turn either as its text or,
    // when the content is null, as its tool calls: calls next to text would be
    // dropped without a word, so that is refused; empty text counts as none.
    if (!content.empty())
      throw bad(where + ".tool_calls", where + " has both text content and tool_calls; the model's chat template renders one of "
                                       "them (send content null with tool_calls)");
    const auto& tc = m["tool_calls"];
    if (!tc.is_array() || tc.empty()) throw bad(where + ".tool_calls", where + ".tool_calls must be a non-empty array");
    nlohmann::json out = nlohmann::json::array();
    for (size_t c = 0; c < tc.size(); ++c) {
      const auto& t = tc[c];
      const std::string at = where + ".tool_calls[" + std::to_string(c) + "]";
      if (!t.is_object()) throw bad(at, at + " must be an object");
      for (const auto& [k, _] : t.items())
        if (k != "id" && k != "type" && k != "function") throw bad(at + "." + k, "unknown field '" + k + "' in " + at);
      if (t.contains("type") && t["type"] != "function") throw bad(at + ".type", at + ".type must be \"function\"");
      if (t.contains("id") && !t["id"].is_string()) throw bad(at + ".id", at + ".id must be a string");
      if (!t.contains("function") || !t["function"].is_object()) throw bad(at + ".function", at + " needs a function object");
      const auto& f = t["function"];
      for (const auto& [k, _] : f.items())
        if (k != "name" && k != "arguments") throw bad(at + ".function." + k, "unknown field '" + k + "' in " + at + ".function");
      if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
        throw bad(at + ".function.name", at + ".function needs a name");
      if (!f.contains("arguments") || !f["arguments"].is_string())
        throw bad(at + ".function.arguments", at + ".function.arguments must be a string (JSON text)");
      out.push_back({{"type", "function"}, {"function", {{"name", f["name"]}, {"arguments", f["arguments"]}}}});
    }
    msgs.push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", std::move(out)}});
  }
  // The template joins every system message, in order, into one system prompt.
  if (!tools_prompt.empty()) msgs.push_back({{"role", "system"}, {"content", tools_prompt}});
  return tk.encode(tpl.render(msgs, add_generation_prompt), false);
}

nlohmann::ordered_json request_in_order(std::string_view text) {
  try {
    auto j = nlohmann::ordered_json::parse(text, [](int depth, nlohmann::ordered_json::parse_event_t event, const nlohmann::ordered_json&) {
      const bool opens = event == nlohmann::ordered_json::parse_event_t::object_start || event == nlohmann::ordered_json::parse_event_t::array_start;
      return !(opens && depth >= kMaxJsonDepth);
    });
    if (!j.is_object() || (!j.contains("response_format") && !j.contains("tools"))) return nullptr;
    return j;
  } catch (const nlohmann::ordered_json::exception&) {
    return nullptr;  // the sorted parse reports what is wrong
  }
}

ApiRequest parse_chat_request(const nlohmann::json& j, const tok::Tokenizer& tk, const tok::ChatTemplate& tpl,
                              const ApiLimits& limits, const nlohmann::ordered_json& ordered) {
  if (!j.is_object()) throw bad("", "the request body must be a JSON object");
  check_fields(j, true);
  ApiRequest r;
  common(j, r, limits, tk.vocab_size(), ordered);
  r.tool_format = limits.tool_format;
  r.reasoning = limits.reasoning;
  if (j.contains("separate_reasoning") && !j["separate_reasoning"].is_null()) {
    if (!j["separate_reasoning"].is_boolean()) throw bad("separate_reasoning", "separate_reasoning must be a boolean");
    r.reasoning = j["separate_reasoning"];
  }
  // R1's template opens the think block, except after a tool's output (no generation prompt then).
  const auto m = j.find("messages");
  const bool after_tool = m != j.end() && m->is_array() && !m->empty() && m->back().is_object() && m->back().contains("role") &&
                          m->back()["role"] == "tool";
  r.think_opened = tpl.opens_think() && !after_tool;
  try {
    r.tools = parse_tool_request(j, ordered);
    if (r.tools.constrained()) {
      const std::string what = r.tools.choice == ToolRequest::Choice::Named ? "tool_choice naming a function"
                               : r.tools.forced()                           ? "tool_choice required"
                                                                            : "strict tools";
      if (!r.gen.grammar.empty())
        throw ToolError(r.tools.forced() ? "tool_choice" : "tools",
                        what + " and " + (j.contains("grammar") ? "grammar" : "response_format") + " both constrain the answer: give one of them");
      r.gen.grammar = tool_call_grammar(r.tools, r.tool_format);
      try {
        grammar::Grammar::parse(r.gen.grammar);  // refused here, not when decoding starts (say, too many positions)
      } catch (const grammar::GrammarError& e) {
        throw ToolError("tools", std::string("the tools' schemas make a grammar that cannot be used: ") + e.what());
      }
    }
  } catch (const ToolError& e) {
    throw bad(e.param(), e.what());
  }
  if (r.tools.choice == ToolRequest::Choice::None) {
    // No call, and none of the call markers in the text either.
    for (const char* marker : {"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"}) {
      const auto id = tk.token_id(marker);
      if (!id) continue;
      bool given = false;
      for (auto& [t, b] : r.gen.adjust.logit_bias)
        if (t == *id) given = true, b = -100.0f;
      if (!given) r.gen.adjust.logit_bias.emplace_back(*id, -100.0f);
    }
    if (r.gen.adjust.logit_bias.size() > kMaxLogitBias)
      throw bad("logit_bias", "logit_bias takes at most " + std::to_string(kMaxLogitBias - 5) + " tokens with tool_choice none");
  }
  // A constrained answer of a reasoning model comes after its reasoning (a
  // grammar of the client's own covers the whole text, think block included).
  // Whether the model thinks first is the model's (its template, gateway.reasoning), not how the answer is shown.
  const bool own_grammar = j.contains("grammar") && !j["grammar"].is_null();
  if ((limits.reasoning || r.think_opened) && !r.gen.grammar.empty() && !own_grammar) {
    r.gen.grammar = grammar::after_reasoning(r.gen.grammar, r.think_opened);
    try {
      grammar::Grammar::parse(r.gen.grammar);
    } catch (const grammar::GrammarError& e) {
      throw bad(j.contains("tools") ? "tools" : "response_format", std::string("the constraint cannot be used after reasoning: ") + e.what());
    }
  }
  r.gen.prompt = chat_prompt(j, tk, tpl, limits, true, r.tools.parses() ? tools_system_prompt(r.tools, r.tool_format) : "");
  return r;
}

ApiRequest parse_completion_request(const nlohmann::json& j, const tok::Tokenizer& tk, const ApiLimits& limits,
                                    const nlohmann::ordered_json& ordered) {
  if (!j.is_object()) throw bad("", "the request body must be a JSON object");
  check_fields(j, false);
  ApiRequest r;
  r.chat = false;
  common(j, r, limits, tk.vocab_size(), ordered);
  if (!j.contains("prompt") || !j["prompt"].is_string()) throw bad("prompt", "prompt must be a string");
  r.gen.prompt = tk.encode(j["prompt"].get<std::string>(), true);
  if (r.gen.prompt.empty()) throw bad("prompt", "prompt must not be empty");
  return r;
}

}  // namespace moemesh
