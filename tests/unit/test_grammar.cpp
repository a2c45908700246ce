// The grammar engine against a plain reference matcher (recursive, on whole
// strings), the token masks against trying every token, JSON Schema grammars
// against hand-written valid and invalid documents, and the scheduler keeping
// sampled text inside a grammar (with and without drafts).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "core/grammar/constraint_cache.h"
#include "core/grammar/json_schema.h"
#include "core/grammar/matcher.h"
#include "core/grammar/token_mask.h"
#include "model/scheduler.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::grammar;

namespace {

// Reference: the end offsets a position's rest of alternative can reach from
// offset i of s; kPrefix: s ran out while a byte was still wanted.
constexpr size_t kPrefix = SIZE_MAX;
struct Reference {
  const Grammar& g;
  std::string s;
  std::map<std::pair<uint32_t, size_t>, std::set<size_t>> memo;
  std::set<size_t> from(uint32_t p, size_t i) {
    auto key = std::make_pair(p, i);
    if (auto it = memo.find(key); it != memo.end()) return it->second;
    std::set<size_t> out;
    const Elem& e = g.at(p);
    if (e.op == Op::End) {
      out.insert(i);
    } else if (e.op == Op::Bytes) {
      if (i == s.size()) out.insert(kPrefix);
      else if (g.has(e.arg, static_cast<uint8_t>(s[i]))) out = from(p + 1, i + 1);
    } else {
      for (uint32_t a : g.alternatives(e.arg))
        for (size_t j : from(a, i)) {
          if (j == kPrefix) out.insert(kPrefix);
          else for (size_t k : from(p + 1, j)) out.insert(k);
        }
    }
    return memo[key] = out;
  }
  // {viable prefix, whole sentence}
  std::pair<bool, bool> judge() {
    std::set<size_t> ends;
    for (uint32_t a : g.alternatives(g.root()))
      for (size_t j : from(a, 0)) ends.insert(j);
    const bool whole = ends.count(s.size()) > 0;
    return {whole || ends.count(kPrefix) > 0, whole};
  }
};

std::pair<bool, bool> reference(const Grammar& g, const std::string& s) { return Reference{g, s, {}}.judge(); }

// What the matcher says of s: every prefix taken, then whole or not.
std::pair<bool, bool> matched(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  Matcher m(g);
  for (unsigned char c : s)
    if (!m.accept_byte(c)) return {false, false};
  return {true, m.accepting()};
}

// A random grammar over a, b, c: rule k refers to later rules anywhere and to
// itself only after a literal (so no left recursion).
std::string random_grammar(std::mt19937& rng) {
  const int rules = 1 + static_cast<int>(rng() % 4);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::string text;
  for (int k = 0; k < rules; ++k) {
    text += (k == 0 ? std::string("root") : "r" + std::to_string(k)) + " ::= ";
    const int alts = 1 + pick(3);
    for (int a = 0; a < alts; ++a) {
      if (a) text += " | ";
      const int items = 1 + pick(3);
      bool consumed = false;
      for (int i = 0; i < items; ++i) {
        std::string item;
        switch (pick(k + 1 < rules ? 5 : 4)) {
          case 0: item = "\"" + std::string(1, "abc"[pick(3)]) + (pick(2) ? "b" : "") + "\""; consumed = true; break;
          case 1: item = pick(2) ? "[ab]" : "[^a\\x00-\\x60\\x64-\\xff]"; consumed = true; break;
          case 2: item = "( \"a\" | \"c\" " + std::string(pick(2) ? "\"b\"" : "") + " )"; consumed = true; break;
          case 3:
            if (consumed && pick(2)) item = (k == 0 ? "root" : "r" + std::to_string(k));
            else item = "\"c\"";
            consumed = true;
            break;
          default: item = "r" + std::to_string(k + 1 + pick(rules - k - 1)); break;
        }
        const int rep = pick(7);
        if (rep == 0) item = "(" + item + ")?";
        else if (rep == 1 && item != "root" && item[0] != 'r') item = "(" + item + ")*";
        else if (rep == 2 && item[0] != 'r') item = "(" + item + ")+";
        else if (rep == 3) item = "(" + item + "){1,2}";
        text += item + " ";
      }
    }
    text += "\n";
  }
  return text;
}

}  // namespace

TEST(Grammar, ParsesWhatItDocumentsAndRefusesTheMalformedWithAPlace) {
  const auto g = Grammar::parse("root ::= \"a\"{2,3} x # comment\nx ::= [0-9]+ | \"\\x41\\u00e9\"\n");
  EXPECT_EQ(g.rule_name(g.root()), "root");
  for (const char* bad : {"", "root ::= (", "root ::= \"a", "root ::= [a-", "root ::= x", "x ::= \"a\"",
                          "root ::= \"a\"{3,2}", "root ::= root \"a\"", "root ::= x\nx ::= x? \"a\"", "root ::= \"a\" root",
                          "root ::= \"\\q\"", "root ::= []", "root ::= \"a\"\nroot ::= \"b\"", "root ::= \"a\"{99999}"}) {
    EXPECT_THROW(Grammar::parse(bad), GrammarError) << bad;
  }
  try {
    Grammar::parse("root ::= \"a\"\n  x ::= \"b\" (");
    FAIL();
  } catch (const GrammarError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

TEST(Grammar, MatcherAgreesWithTheReferenceOnRandomGrammarsAndStrings) {
  std::mt19937 rng(17);
  int grammars = 0, sentences = 0;
  while (grammars < 300) {
    const std::string text = random_grammar(rng);
    std::shared_ptr<const Grammar> g;
    try {
      g = std::make_shared<const Grammar>(Grammar::parse(text));
    } catch (const GrammarError&) {
      continue;  // a random rule that derives nothing finite
    }
    ++grammars;
    for (int t = 0; t < 40; ++t) {
      std::string s;
      const size_t n = rng() % 9;
      for (size_t i = 0; i < n; ++i) s += "abcd"[rng() % 4];
      const auto want = reference(*g, s);
      const auto got = matched(g, s);
      ASSERT_EQ(got, want) << text << "on \"" << s << "\"";
      sentences += want.second;
    }
  }
  EXPECT_GT(sentences, 500) << "the strings must hit sentences often enough to test them";
}

namespace {
std::shared_ptr<const Grammar> schema_grammar(const char* schema) {
  return std::make_shared<const Grammar>(Grammar::parse(json_schema_grammar(nlohmann::ordered_json::parse(schema))));
}
bool whole(const std::shared_ptr<const Grammar>& g, const std::string& s) { return matched(g, s) == std::make_pair(true, true); }
}  // namespace

TEST(JsonSchemaGrammar, AcceptsValidDocumentsAndRejectsInvalidOnes) {
  const auto person = schema_grammar(R"({"type": "object", "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 5}, "age": {"type": "integer"},
      "tags": {"type": "array", "items": {"enum": ["a", "b", 3]}, "maxItems": 2},
      "ok": {"type": ["boolean", "null"]}}, "required": ["name"], "additionalProperties": false})");
  for (const char* good : {R"({"name":"ann"})", R"({"name": "ann", "age": -12})", R"({"name":"é","tags":["a",3]})",
                           R"({ "name" : "a\"b", "ok" : null })", R"({"name":"x","age":0,"tags":[],"ok":true})"})
    EXPECT_TRUE(whole(person, good)) << good;
  for (const char* bad : {R"({})", R"({"age": 1})", R"({"name":""})", R"({"name":"toolong"})", R"({"name":"a","age":1.5})",
                          R"({"name":"a","tags":["c"]})", R"({"name":"a","tags":["a","b","a"]})", R"({"name":"a","x":1})",
                          R"({"age":1,"name":"a"})", R"({"name":"a","age":01})", R"({"name":"a\q"})", "{\"name\":\"a\x01\"}"})
    EXPECT_FALSE(whole(person, bad)) << bad;

  const auto tree = schema_grammar(R"({"$defs": {"node": {"type": "object", "properties": {
      "v": {"type": "number"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}},
      "$ref": "#/$defs/node"})");
  EXPECT_TRUE(whole(tree, R"({"v":1.5e3,"kids":[{"v":2},{"v":-0.25,"kids":[]}]})"));
  EXPECT_FALSE(whole(tree, R"({"v":1,"kids":[{}]})"));
  const auto any = schema_grammar(R"({"anyOf": [{"type": "string"}, {"type": "array", "items": {"const": 1}, "minItems": 1}]})");
  EXPECT_TRUE(whole(any, R"("x")"));
  EXPECT_TRUE(whole(any, R"([1, 1])"));
  EXPECT_FALSE(whole(any, R"([])"));
  const auto obj = std::make_shared<const Grammar>(Grammar::parse(json_object_grammar()));
  EXPECT_TRUE(whole(obj, R"({"a": [1, {"b": null}, "c", true, -2.5E-3]})"));
  EXPECT_FALSE(whole(obj, R"([1])"));
}

TEST(JsonSchemaGrammar, MatcherAgreesWithTheReferenceOnSchemaGrammars) {
  // Prefixes of valid documents and of mutated ones, on schema grammars.
  const std::pair<const char*, std::vector<std::string>> cases[] = {
      {R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}}, "required": ["a"]})",
       {R"({"a": -10, "b": [true, false]})", R"({"a":0})"}},
      {R"({"anyOf": [{"type": "string", "maxLength": 3}, {"enum": [1, "two", null]}]})", {R"("two")", "null", R"("ab")", "1"}},
      {R"({"$defs": {"t": {"type": "object", "properties": {"k": {"type": "array", "items": {"$ref": "#/$defs/t"}, "maxItems": 2}}}}, "$ref": "#/$defs/t"})",
       {R"({"k": [{"k": []}, {}]})", "{}"}},
      {R"({"type": "number"})", {"-0.5e+12", "3", "12.25"}},
  };
  std::mt19937 rng(3);
  for (const auto& [schema, docs] : cases) {
    const auto g = schema_grammar(schema);
    for (const std::string& doc : docs) {
      for (int variant = 0; variant < 30; ++variant) {
        std::string s = doc;
        if (variant > 0) s[rng() % s.size()] = "{}[],:\" 0a-e1"[rng() % 13];  // one byte changed
        for (size_t n = 0; n <= s.size(); ++n) {
          const std::string p = s.substr(0, n);
          ASSERT_EQ(matched(g, p), reference(*g, p)) << schema << " on " << p;
        }
      }
      EXPECT_TRUE(whole(g, doc)) << doc;
    }
  }
}

TEST(JsonSchemaGrammar, RefusesWhatItDoesNotSupportByName) {
  const std::pair<const char*, const char*> refused[] = {
      {R"({"type": "string", "pattern": "a+"})", "pattern"},
      {R"({"type": "string", "format": "date"})", "format"},
      {R"({"type": "integer", "minimum": 3})", "minimum"},
      {R"({"type": "object", "properties": {"a": {"type": "string", "maxLength": 2, "foo": 1}}})", "properties.a.foo"},
      {R"({"type": "object", "properties": {"a": {}}, "additionalProperties": true})", "additionalProperties"},
      {R"({"type": "object", "properties": {"a": {}}, "required": ["b"]})", "required"},
      {R"({"oneOf": [{}]})", "oneOf"},
      {R"({"$ref": "#/$defs/missing"})", "$ref"},
      {R"({"$ref": "http://x/y"})", "$ref"},
      {R"({"type": "strung"})", "type"},
      {R"({"type": "array", "maxItems": 1, "minItems": 2})", "maxItems"},
      {R"({"type": "string", "minItems": 2})", "minItems"},
  };
  for (const auto& [schema, where] : refused) {
    try {
      json_schema_grammar(nlohmann::ordered_json::parse(schema));
      ADD_FAILURE() << "accepted " << schema;
    } catch (const SchemaError& e) {
      EXPECT_EQ(e.where(), where) << schema << ": " << e.what();
    }
  }
}

TEST(TokenMasks, EqualTryingEveryTokenAtEveryStepOfDocuments) {
  // A vocabulary of JSON-ish pieces: single bytes, keys with quotes, numbers, multi-byte characters.
  std::vector<std::string> bytes{""};
  for (int c = 0x20; c < 0x7f; ++c) bytes.emplace_back(1, static_cast<char>(c));
  for (const char* t : {"\"name\"", "\":", "\",", "\"}", "{\"", "ab", "true", "false", "null", "12", "3.", "e-", "\\n", "\\u00",
                        "\xc3\xa9", "\xc3", "\xa9", " \"", "\n  ", "],", "}]", "[{", "na", "me", "\":\"", "age", "1,", "\"a\""})
    bytes.emplace_back(t);
  auto vocab = std::make_shared<const TokenBytes>(bytes);
  const auto g = schema_grammar(R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 4},
      "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["name"]})");
  TokenMasks masks(g, vocab);
  for (const std::string doc : {R"({"name":"ab\n","age":12,"tags":["é",""]})", R"({ "name" : "", "tags" : [ ] })"}) {
    Matcher m(g);
    TokenSet got;
    for (size_t i = 0; i <= doc.size(); ++i) {
      masks.allowed_tokens(m, got);
      for (size_t t = 0; t < bytes.size(); ++t) {
        const bool want = !bytes[t].empty() && !Matcher::advance(*g, m.stacks(), bytes[t]).empty();
        ASSERT_EQ(allowed(got, static_cast<int32_t>(t)), want) << "after \"" << doc.substr(0, i) << "\", token \"" << bytes[t] << "\"";
      }
      if (i < doc.size()) ASSERT_TRUE(m.accept_byte(static_cast<uint8_t>(doc[i]))) << doc.substr(0, i + 1);
    }
    EXPECT_TRUE(m.accepting());
  }
  EXPECT_GT(masks.positions_computed(), 10u);
}

TEST(ConstraintCache, SharesParsedGrammarsAndRefusesBadOnes) {
  ConstraintCache cache(std::make_shared<const TokenBytes>(std::vector<std::string>{"a", "b"}), 2);
  const auto a = cache.get("root ::= \"a\"");
  EXPECT_EQ(cache.get("root ::= \"a\""), a);
  cache.get("root ::= \"b\"");
  cache.get("root ::= \"ab\"");
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.get("root ::= \"a\""), a) << "evicted, parsed again";
  EXPECT_THROW(cache.get("root ::= ("), GrammarError);
}

namespace {
// Token bytes for a test model's vocabulary: every character once, then
// pieces of two and three.
std::shared_ptr<const TokenBytes> test_vocab(int64_t V) {
  std::vector<std::string> b(static_cast<size_t>(V));
  const std::string chars = " \"{}[]:,abcdefghijklmnopqrstuvwxyz0123456789-.E\\\n";
  for (int64_t i = 1; i < V; ++i) {
    b[i] += chars[i % chars.size()];
    if (i > static_cast<int64_t>(chars.size())) b[i] += chars[(i / 7) % chars.size()];
    if (i > static_cast<int64_t>(chars.size()) && i % 5 == 2) b[i] += chars[(i / 11) % chars.size()];
  }
  return std::make_shared<const TokenBytes>(b);  // id 0 stays empty: the stop id below
}
}  // namespace

TEST(Scheduler, SampledAndDraftedTextStaysInTheGrammarAndEndsWithIt) {
  EngineOptions o;
  o.kv_tokens = 8192;
  Engine e(moemesh::testing::test_model("tiny"), o);
  const int64_t V = e.config().vocab_size;
  auto vocab = test_vocab(V);
  ConstraintCache cache(vocab);
  const std::string text = json_schema_grammar(nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
      "a": {"type": "string", "maxLength": 6}, "b": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
      "c": {"enum": [true, "x"]}}, "required": ["a", "c"]})"));
  const auto g = std::make_shared<const Grammar>(Grammar::parse(text));
  for (int k : {0, 2}) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      Scheduler s(e, {64, 64, 1024, 64});
      LocalDrafter d(e);
      if (k > 0) s.set_drafter(&d, k);
      GenerationRequest r{seed, moemesh::testing::random_tokens(5, V, static_cast<uint32_t>(seed)), 400, {0}, {}};
      r.sampling = {seed % 2 ? 1.0f : 0.0f, 0, 1.0f, seed, 0.0f};
      r.grammar = text;
      r.constraint = cache.get(text);
      s.submit(r);
      std::string out;
      FinishReason why = FinishReason::None;
      for (int i = 0; i < 2000 && !s.idle(); ++i)
        for (const auto& ev : s.step()) {
          if (ev.token > 0) out += vocab->bytes(ev.token);
          if (ev.finish != FinishReason::None) why = ev.finish;
          if (!ev.error.empty()) ADD_FAILURE() << ev.error;
        }
      EXPECT_EQ(why, FinishReason::Stop) << "k " << k << " seed " << seed << ": " << out;
      EXPECT_TRUE(whole(g, out)) << "k " << k << " seed " << seed << ": " << out;
      EXPECT_NO_THROW((void)nlohmann::json::parse(out)) << out;
    }
  }
  GenerationRequest no_tables{99, {1, 2}, 4, {}, {}};
  no_tables.grammar = text;
  Scheduler s(e);
  EXPECT_THROW(s.submit(no_tables), RequestRefused);
}
