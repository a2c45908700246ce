#include "choice_stream.h"

namespace moemesh {

ChoiceStream::ChoiceStream(std::shared_ptr<const tok::Tokenizer> tk, const ApiRequest& api) : chat_(api.chat), text_(tk, api.stop) {
  if (api.logprobs) logprobs_.emplace(std::move(tk), api.chat);
}

ChoiceStream::Piece ChoiceStream::push(const TokensUpdate& u) {
  Piece p;
  if (ended()) return p;
  if (!u.tokens.empty() && !first_) first_ = clock::now();
  tokens_ += static_cast<int64_t>(u.tokens.size());
  // The tokens of this update, the one that completed a stop string included; none after it.
  if (logprobs_ && !stopped_) {
    nlohmann::json lp = logprobs_->add(u.tokens, u.logprobs);
    if (lp.is_object() && !(chat_ ? lp["content"] : lp["tokens"]).empty()) p.logprobs = std::move(lp);
  }
  if (!stopped_) p.text = text_.push(u.tokens);
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
      p.text += text_.finish();
    }
    p.ended = true;
  }
  text_all_ += p.text;
  return p;
}

}  // namespace moemesh
