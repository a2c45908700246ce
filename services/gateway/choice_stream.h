// One choice of a generation as its client sees it, read from the attention
// role's token updates: the text decoded and cut at the first stop string,
// split into reasoning, content and tool calls (when the request asks for
// them), the log-probabilities, the token counts and the finish reason.
// The HTTP routes and the WebSocket chat both read generations through it, so
// the same parameters give the same results on either.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "logprobs_json.h"
#include "openai_api.h"
#include "services/attention/api.h"
#include "reasoning_parser.h"
#include "text_stream.h"
#include "tool_call_parser.h"

namespace moemesh {

class ChoiceStream {
 public:
  using clock = std::chrono::steady_clock;
  ChoiceStream(std::shared_ptr<const tok::Tokenizer> tk, const ApiRequest& api);

  struct Piece {
    std::string text;        // new content (may be empty)
    std::string reasoning;   // new reasoning_content
    nlohmann::json tool_calls;  // delta.tool_calls entries (null: none)
    nlohmann::json logprobs;  // the entries of this update's tokens, when asked for and any (else null)
    bool ended = false;       // this update ended the choice: finish() says how
    bool cancel = false;      // a stop string completed: the caller cancels the generation
  };
  // Nothing after the end: a late update (say the cancellation after a stop
  // string) gives an empty piece.
  Piece push(const TokensUpdate& u);

  bool ended() const { return finish_ != FinishReason::None; }
  // Stop (a stop id or string), Length, Cancelled (by the client or the server) or Error.
  FinishReason finish() const { return finish_; }
  const std::string& error() const { return error_; }
  wire::ErrorCode code() const { return code_; }
  const std::string& text() const { return text_all_; }
  const std::string& reasoning() const { return reasoning_all_; }
  // message.tool_calls (null: no call)
  nlohmann::json tool_calls() const;
  // The answer is calls: an OpenAI finish reason "tool_calls" where it would be "stop".
  bool called() const { return tools_ && !tools_->calls().empty(); }
  int64_t reasoning_tokens() const { return reasoning_tokens_; }
  bool any(const Piece& p) const { return !p.text.empty() || !p.reasoning.empty() || !p.tool_calls.is_null() || !p.logprobs.is_null(); }
  // Every token's entries so far (null without logprobs).
  nlohmann::json logprobs() const { return logprobs_ ? logprobs_->all() : nlohmann::json(); }
  int64_t tokens() const { return tokens_; }
  int64_t cached_tokens() const { return cached_tokens_; }
  std::optional<clock::time_point> first_token() const { return first_; }

 private:
  void feed(Piece& p, std::string text);          // decoded text through the parsers
  void feed_content(Piece& p, std::string text);  // what is not reasoning, through the tool call parser
  void flush(Piece& p);                    // the end: what the parsers held
  static void add(Piece& p, const ToolCallParser::Out& o);  // the parser's content and call deltas
  bool chat_;
  bool stop_strings_;  // a stop string may end the text inside an update
  TextStream text_;
  std::optional<ReasoningParser> reasoning_;
  std::optional<ToolCallParser> tools_;
  std::string reasoning_all_;
  int64_t reasoning_tokens_ = 0;
  std::optional<LogprobsJson> logprobs_;
  std::string text_all_, error_;
  FinishReason finish_ = FinishReason::None;
  wire::ErrorCode code_ = wire::ErrorCode::None;
  bool stopped_ = false;
  int64_t tokens_ = 0, cached_tokens_ = 0;
  std::optional<clock::time_point> first_;
};

}  // namespace moemesh
