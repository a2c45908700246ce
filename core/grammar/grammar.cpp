#include "core/grammar/grammar.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>

namespace moemesh::grammar {

namespace {

using ByteClass = std::array<uint64_t, 4>;
void set(ByteClass& c, uint8_t b) { c[b >> 6] |= uint64_t{1} << (b & 63); }

// What the parser reads, before repetitions are expanded.
struct Item;
using Sequence = std::vector<Item>;
struct Item {
  enum Kind { Literal, Class, Ref, Group } kind = Literal;
  std::string bytes;             // Literal
  ByteClass cls{};               // Class
  std::string name;              // Ref
  std::vector<Sequence> alts;    // Group
  uint32_t min = 1, max = 1;     // repetition; max UINT32_MAX: unbounded
  size_t line = 0, col = 0;
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  std::vector<std::pair<std::string, std::vector<Sequence>>> rules() {
    std::vector<std::pair<std::string, std::vector<Sequence>>> out;
    skip();
    while (i_ < s_.size()) {
      const std::string name = identifier();
      if (name.empty()) fail("a rule name");
      skip();
      if (s_.substr(i_, 3) != "::=") fail("'::=' after '" + name + "'");
      i_ += 3;
      out.emplace_back(name, alternatives(0));
      skip();
    }
    if (out.empty()) throw GrammarError("grammar: no rules");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& wanted) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
      if (s_[k] == '\n') { ++line; col = 1; } else { ++col; }
    }
    throw GrammarError("grammar: expected " + wanted + " at line " + std::to_string(line) + ", column " + std::to_string(col));
  }
  // Spaces, newlines and # comments.
  void skip() {
    while (i_ < s_.size()) {
      if (s_[i_] == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r') {
        ++i_;
      } else {
        break;
      }
    }
  }
  static bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; }
  std::string identifier() {
    size_t j = i_;
    while (j < s_.size() && name_char(s_[j])) ++j;
    std::string n(s_.substr(i_, j - i_));
    i_ = j;
    return n;
  }
  // Is a rule definition next (name ::=)? Then the current rule has ended.
  bool at_definition() const {
    size_t j = i_;
    while (j < s_.size() && name_char(s_[j])) ++j;
    if (j == i_) return false;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    return s_.substr(j, 3) == "::=";
  }

  std::vector<Sequence> alternatives(int depth) {
    if (depth > 64) fail("groups nested at most 64 deep");
    std::vector<Sequence> alts;
    alts.push_back(sequence(depth));
    skip();
    while (i_ < s_.size() && s_[i_] == '|') {
      ++i_;
      alts.push_back(sequence(depth));
      skip();
    }
    return alts;
  }

  Sequence sequence(int depth) {
    Sequence seq;
    for (;;) {
      skip();
      if (i_ >= s_.size() || s_[i_] == '|' || s_[i_] == ')' || at_definition()) return seq;
      Item it;
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        it.kind = Item::Literal;
        while (i_ < s_.size() && s_[i_] != '"') append_char(it.bytes, true);
        if (i_ >= s_.size()) fail("a closing '\"'");
        ++i_;
      } else if (c == '[') {
        ++i_;
        it.kind = Item::Class;
        const bool negate = i_ < s_.size() && s_[i_] == '^';
        if (negate) ++i_;
        bool any = false;
        while (i_ < s_.size() && s_[i_] != ']') {
          const int lo = class_byte();
          int hi = lo;
          if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
            ++i_;
            hi = class_byte();
          }
          if (hi < lo) fail("a range whose end is not below its start");
          for (int b = lo; b <= hi; ++b) set(it.cls, static_cast<uint8_t>(b));
          any = true;
        }
        if (i_ >= s_.size()) fail("a closing ']'");
        ++i_;
        if (!any) fail("a non-empty byte class");
        if (negate)
          for (auto& w : it.cls) w = ~w;
      } else if (c == '(') {
        ++i_;
        it.kind = Item::Group;
        it.alts = alternatives(depth + 1);
        skip();
        if (i_ >= s_.size() || s_[i_] != ')') fail("a closing ')'");
        ++i_;
      } else if (name_char(c)) {
        it.kind = Item::Ref;
        it.name = identifier();
      } else {
        fail("a literal, a byte class, a rule name or a group");
      }
      repetition(it);
      seq.push_back(std::move(it));
    }
  }

  void repetition(Item& it) {
    if (i_ >= s_.size()) return;
    const char c = s_[i_];
    if (c == '*') { it.min = 0; it.max = UINT32_MAX; ++i_; }
    else if (c == '+') { it.min = 1; it.max = UINT32_MAX; ++i_; }
    else if (c == '?') { it.min = 0; it.max = 1; ++i_; }
    else if (c == '{') {
      ++i_;
      it.min = number();
      it.max = it.min;
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        it.max = i_ < s_.size() && s_[i_] == '}' ? UINT32_MAX : number();
      }
      if (i_ >= s_.size() || s_[i_] != '}') fail("'}' closing a repetition");
      ++i_;
      if (it.max < it.min) fail("a repetition {m,n} with m <= n");
    }
  }
  uint32_t number() {
    size_t j = i_;
    uint64_t v = 0;
    while (j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j])) && v <= Grammar::kMaxRepeat) v = v * 10 + (s_[j++] - '0');
    if (j == i_) fail("a number");
    if (v > Grammar::kMaxRepeat) fail("a repetition count of at most " + std::to_string(Grammar::kMaxRepeat));
    i_ = j;
    return static_cast<uint32_t>(v);
  }
  int hex(size_t digits) {
    int v = 0;
    for (size_t k = 0; k < digits; ++k) {
      if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_]))) fail(std::to_string(digits) + " hex digits");
      const char h = s_[i_++];
      v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
    }
    return v;
  }
  // One character of a literal (escapes decoded), appended as bytes.
  void append_char(std::string& out, bool literal) {
    const char c = s_[i_++];
    if (c != '\\') {
      out += c;
      return;
    }
    if (i_ >= s_.size()) fail("an escaped character");
    const char e = s_[i_++];
    switch (e) {
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'x': out += static_cast<char>(hex(2)); return;
      case 'u': {
        if (!literal) fail("a byte (\\xHH) in a byte class, not \\u");
        const int cp = hex(4);
        if (cp >= 0xD800 && cp <= 0xDFFF) fail("a code point that is not a surrogate");
        if (cp < 0x80) out += static_cast<char>(cp);
        else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
        else { out += static_cast<char>(0xE0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
        return;
      }
      case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'': out += e; return;
      default: fail("a known escape (\\n \\r \\t \\xHH \\uHHHH \\\\ \\\" \\] \\[ \\- \\^)");
    }
  }
  int class_byte() {
    std::string b;
    append_char(b, false);
    if (b.size() != 1) fail("single bytes in a byte class");
    return static_cast<unsigned char>(b[0]);
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

class GrammarBuilder {
 public:
  Grammar build(const std::vector<std::pair<std::string, std::vector<Sequence>>>& rules) {
    for (const auto& [name, _] : rules) {
      if (ids_.count(name)) throw GrammarError("grammar: rule '" + name + "' is defined twice");
      ids_[name] = new_rule(name);
    }
    if (!ids_.count("root")) throw GrammarError("grammar: no 'root' rule");
    for (const auto& [name, alts] : rules) define(ids_[name], alts);
    g_.root_ = ids_["root"];
    check();
    return std::move(g_);
  }

 private:
  uint32_t new_rule(std::string name) {
    g_.alts_.emplace_back();
    g_.names_.push_back(std::move(name));
    return static_cast<uint32_t>(g_.alts_.size() - 1);
  }
  uint32_t byte_class(const ByteClass& c) {
    auto it = class_ids_.find(c);
    if (it != class_ids_.end()) return it->second;
    g_.classes_.push_back(c);
    return class_ids_[c] = static_cast<uint32_t>(g_.classes_.size() - 1);
  }
  void push(std::vector<Elem>& alt, Elem e) {
    if (++total_ > Grammar::kMaxPositions) throw GrammarError("grammar: more than " + std::to_string(Grammar::kMaxPositions) + " positions once expanded");
    alt.push_back(e);
  }
  void define(uint32_t rule, const std::vector<Sequence>& alts) {
    std::vector<std::vector<Elem>> lowered;
    for (const auto& seq : alts) {
      std::vector<Elem> alt;
      for (const auto& it : seq) lower(it, alt);
      lowered.push_back(std::move(alt));
    }
    for (auto& alt : lowered) {
      g_.alts_[rule].push_back(static_cast<uint32_t>(g_.flat_.size()));
      for (const Elem& e : alt) g_.flat_.push_back(e);
      g_.flat_.push_back({Op::End, 0});
      if (++total_ > Grammar::kMaxPositions) throw GrammarError("grammar: too large once expanded");
    }
  }
  // The item once, as elements.
  void once(const Item& it, std::vector<Elem>& alt) {
    switch (it.kind) {
      case Item::Literal:
        for (unsigned char b : it.bytes) {
          ByteClass c{};
          set(c, b);
          push(alt, {Op::Bytes, byte_class(c)});
        }
        return;
      case Item::Class: push(alt, {Op::Bytes, byte_class(it.cls)}); return;
      case Item::Ref: {
        auto r = ids_.find(it.name);
        if (r == ids_.end()) throw GrammarError("grammar: rule '" + it.name + "' is used but not defined");
        push(alt, {Op::Rule, r->second});
        return;
      }
      case Item::Group: {
        const uint32_t g = new_rule("(group)");
        define(g, it.alts);
        push(alt, {Op::Rule, g});
        return;
      }
    }
  }
  // The item as one element (a literal of several bytes becomes a rule).
  Elem unit(const Item& it) {
    std::vector<Elem> e;
    once(it, e);
    if (e.size() == 1) return e[0];
    const uint32_t r = new_rule("(repeated)");
    g_.alts_[r].push_back(static_cast<uint32_t>(g_.flat_.size()));
    for (const Elem& x : e) g_.flat_.push_back(x);
    g_.flat_.push_back({Op::End, 0});
    return {Op::Rule, r};
  }
  void lower(const Item& it, std::vector<Elem>& alt) {
    if (it.min == 1 && it.max == 1) return once(it, alt);
    const Elem x = unit(it);
    for (uint32_t k = 0; k < it.min; ++k) push(alt, x);
    if (it.max == UINT32_MAX) {
      // R ::= x R | ε
      const uint32_t r = new_rule("(star)");
      g_.alts_[r].push_back(static_cast<uint32_t>(g_.flat_.size()));
      g_.flat_.push_back(x);
      g_.flat_.push_back({Op::Rule, r});
      g_.flat_.push_back({Op::End, 0});
      g_.alts_[r].push_back(static_cast<uint32_t>(g_.flat_.size()));
      g_.flat_.push_back({Op::End, 0});
      total_ += 4;
      push(alt, {Op::Rule, r});
      return;
    }
    // O_1 ::= x | ε ; O_k ::= x O_(k-1) | ε
    uint32_t prev = UINT32_MAX;
    for (uint32_t k = 0; k < it.max - it.min; ++k) {
      const uint32_t r = new_rule("(optional)");
      g_.alts_[r].push_back(static_cast<uint32_t>(g_.flat_.size()));
      g_.flat_.push_back(x);
      if (prev != UINT32_MAX) g_.flat_.push_back({Op::Rule, prev});
      g_.flat_.push_back({Op::End, 0});
      g_.alts_[r].push_back(static_cast<uint32_t>(g_.flat_.size()));
      g_.flat_.push_back({Op::End, 0});
      total_ += 4;
      if (total_ > Grammar::kMaxPositions) throw GrammarError("grammar: too large once expanded");
      prev = r;
    }
    if (prev != UINT32_MAX) push(alt, {Op::Rule, prev});
  }

  // Every rule must derive some finite text (so any viable prefix can be
  // completed) and none may reach itself without consuming a byte.
  void check() {
    const size_t n = g_.alts_.size();
    auto fixpoint = [&](auto&& elem_ok) {
      std::vector<bool> ok(n, false);
      for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r) {
          if (ok[r]) continue;
          for (uint32_t a : g_.alts_[r]) {
            bool all = true;
            for (uint32_t p = a; g_.flat_[p].op != Op::End && all; ++p) all = elem_ok(g_.flat_[p], ok);
            if (all) { ok[r] = true; changed = true; break; }
          }
        }
      }
      return ok;
    };
    const auto productive = fixpoint([](const Elem& e, const std::vector<bool>& ok) { return e.op == Op::Bytes || ok[e.arg]; });
    for (size_t r = 0; r < n; ++r)
      if (!productive[r]) throw GrammarError("grammar: rule '" + g_.names_[r] + "' derives no finite text");
    const auto nullable = fixpoint([](const Elem& e, const std::vector<bool>& ok) { return e.op == Op::Rule && ok[e.arg]; });
    // Left recursion: a cycle of rules reached through nullable prefixes.
    std::vector<int> state(n, 0);  // 0 new, 1 on the path, 2 done
    std::function<void(uint32_t)> visit = [&](uint32_t r) {
      state[r] = 1;
      for (uint32_t a : g_.alts_[r])
        for (uint32_t p = a; g_.flat_[p].op == Op::Rule; ++p) {
          const uint32_t s = g_.flat_[p].arg;
          if (state[s] == 1) throw GrammarError("grammar: rule '" + g_.names_[s] + "' is left-recursive");
          if (state[s] == 0) visit(s);
          if (!nullable[s]) break;
        }
      state[r] = 2;
    };
    for (uint32_t r = 0; r < n; ++r)
      if (state[r] == 0) visit(r);
  }

  Grammar g_;
  std::map<std::string, uint32_t> ids_;
  std::map<ByteClass, uint32_t> class_ids_;
  size_t total_ = 0;
};

Grammar Grammar::parse(std::string_view text) {
  if (text.size() > kMaxText) throw GrammarError("grammar: longer than " + std::to_string(kMaxText) + " bytes");
  Parser p(text);
  return GrammarBuilder().build(p.rules());
}

std::string literal(std::string_view text) {
  static const char* hexd = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) { out += "\\x"; out += hexd[c >> 4]; out += hexd[c & 15]; }
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string prefix_rules(std::string_view t, std::string_view prefix) {
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; };
  std::string out;
  out.reserve(t.size() * 5 / 4);
  size_t i = 0;
  // Copies up to and including `close`, escapes kept as written.
  auto span_to = [&](char close) {
    out += t[i++];
    while (i < t.size() && t[i] != close) {
      if (t[i] == '\\' && i + 1 < t.size()) out += t[i++];
      out += t[i++];
    }
    if (i < t.size()) out += t[i++];
  };
  while (i < t.size()) {
    const char c = t[i];
    if (c == '"') span_to('"');
    else if (c == '[') span_to(']');
    else if (c == '{') span_to('}');
    else if (c == '#') {
      while (i < t.size() && t[i] != '\n') out += t[i++];
    } else if (name_char(c)) {
      out += prefix;
      while (i < t.size() && name_char(t[i])) out += t[i++];
    } else {
      out += t[i++];
    }
  }
  return out;
}

std::string text_without(std::string_view name, std::string_view marker, bool then_marker) {
  if (marker.size() < 2 || marker.substr(1).find(marker[0]) != std::string_view::npos)
    throw GrammarError("grammar: text_without needs a marker whose first byte appears only there");
  // The states of matching the marker: k bytes of it seen. A byte that breaks
  // it falls back to the start, or to one byte seen when it is the first byte.
  auto byte = [](char c) {
    static const char* hexd = "0123456789abcdef";
    const auto b = static_cast<unsigned char>(c);
    return std::string("\\x") + hexd[b >> 4] + hexd[b & 15];
  };
  const std::string n(name), first = byte(marker[0]);
  auto state = [&](size_t k) { return n + "-" + std::to_string(k); };
  const std::string empty = then_marker ? "" : "\"\" | ";
  std::string g = state(0) + " ::= " + empty + "[^" + first + "] " + state(0) + " | \"" + first + "\" " + state(1) + "\n";
  for (size_t k = 1; k < marker.size(); ++k) {
    const std::string want = byte(marker[k]);
    g += state(k) + " ::= " + empty + "\"" + first + "\" " + state(1) + " | ";
    if (k + 1 < marker.size()) g += "\"" + want + "\" " + state(k + 1) + " | ";
    else if (then_marker) g += "\"" + want + "\" | ";
    g += "[^" + first + want + "] " + state(0) + "\n";
  }
  return g;
}

std::string after_reasoning(std::string_view answer, bool opened) {
  // Any text that does not contain "</think>", then "</think>".
  std::string g = std::string("root ::= ") + (opened ? "think-0" : "( \"<think>\" think-0 )?") + " think-ws answer.root\n";
  g += "think-ws ::= [ \\n]*\n";
  return g + text_without("think", "</think>", true) + prefix_rules(answer, "answer.");
}

}  // namespace moemesh::grammar
