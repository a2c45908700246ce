#include "choice_stream.h"

namespace moemesh {

ChoiceStream::ChoiceStream(std::shared_ptr<const tok::Tokenizer> tk, const ApiRequest& api)
    : chat_(api.chat), stop_strings_(!api.stop.empty()), text_(tk, api.stop) {
  if (api.logprobs) logprobs_.emplace(std::move(tk), api.chat);
  if (api.chat && api.reasoning) reasoning_.emplace(api.think_opened);
  if (api.chat && api.tools.parses()) {
    std::vector<std::string> names;
    for (const auto& t : api.tools.tools) names.push_back(t.name);
    tools_.emplace(api.tool_format, std::move(names));
  }
}

void ChoiceStream::feed(Piece& p, std::string text) {
  if (reasoning_) {
    auto o = reasoning_->push(text);
    p.reasoning += o.reasoning;
    text = std::move(o.content);
  }
  feed_content(p, std::move(text));
}

void ChoiceStream::feed_content(Piece& p, std::string text) {
  if (!tools_) {
    p.text += text;
    return;
  }
  add(p, tools_->push(text));
}

void ChoiceStream::add(Piece& p, const ToolCallParser::Out& o) {
  p.text += o.content;
  for (const auto& d : o.calls) {
    nlohmann::json e{{"index", d.index}, {"function", {{"arguments", d.arguments}}}};
    if (!d.id.empty()) {
      e["id"] = d.id;
      e["type"] = "function";
      e["function"]["name"] = d.name;
    }
    if (p.tool_calls.is_null()) p.tool_calls = nlohmann::json::array();
    p.tool_calls.push_back(std::move(e));
  }
}

void ChoiceStream::flush(Piece& p) {
  feed(p, text_.finish());
  if (reasoning_) {
    auto o = reasoning_->finish();
    p.reasoning += o.reasoning;
    feed_content(p, std::move(o.content));
  }
  if (tools_) add(p, tools_->finish());
}

nlohmann::json ChoiceStream::tool_calls() const {
  if (!called()) return nullptr;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : tools_->calls())
    out.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  return out;
}

ChoiceStream::Piece ChoiceStream::push(const TokensUpdate& u) {
  Piece p;
  if (ended()) return p;
  if (!u.tokens.empty() && !first_) first_ = clock::now();
  // Only the tokens up to the one that completed a stop string count, in usage
  // and logprobs alike: those generated before the cancellation reached the
  // engine are a race, and the client never sees them.
  size_t used = 0;
  if (!stopped_) {
    if (reasoning_ || stop_strings_) {
      // Token by token: a token that enters, stays in or leaves the think block is
      // a reasoning token, and a stop string ends the count at its last token.
      for (const int32_t t : u.tokens) {
        const bool was = reasoning_ && reasoning_->in_think();
        feed(p, text_.push({t}));
        ++used;
        if (reasoning_ && (was || reasoning_->in_think())) ++reasoning_tokens_;
        if (text_.stopped()) break;
      }
    } else {
      feed(p, text_.push(u.tokens));
      used = u.tokens.size();
    }
  }
  tokens_ += static_cast<int64_t>(used);
  if (logprobs_ && used > 0) {
    nlohmann::json lp = logprobs_->add(std::span(u.tokens).first(used), std::span(u.logprobs).first(std::min(used, u.logprobs.size())));
    if (lp.is_object() && !(chat_ ? lp["content"] : lp["tokens"]).empty()) p.logprobs = std::move(lp);
  }
  if (text_.stopped() && !stopped_) {
    stopped_ = true;
    p.cancel = true;
  }
  if (u.finished()) {
    cached_tokens_ = u.cached_tokens;
    if (u.finish == FinishReason::Error) {
      finish_ = FinishReason::Error;
      error_ = u.error;
      code_ = u.code;
    } else {
      // A stop string ends it with "stop" although the generation was cancelled for it.
      finish_ = stopped_ ? FinishReason::Stop : u.finish;
      flush(p);
    }
    p.ended = true;
  }
  text_all_ += p.text;
  reasoning_all_ += p.reasoning;
  return p;
}

}  // namespace moemesh
