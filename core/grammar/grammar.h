// A context-free grammar over bytes, in a GBNF-like text form (docs/STRUCTURED_OUTPUT.md):
//
//   root   ::= "{" ws pair ("," ws pair)* "}"     # literals, rule names, groups
//   pair   ::= [a-z]+ ws ":" ws value              # byte classes, [^...] negated
//   ws     ::= [ \t\n]{0,20}                        # * + ? {m} {m,} {m,n}
//
// Repetitions are expanded into right-recursive rules when parsed, so the
// grammar that matchers walk has three kinds of element only: a byte class,
// a rule reference, the end of an alternative. Left recursion is refused (a
// matcher walking it would never stop), as is anything malformed, with the
// line and column.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace moemesh::grammar {

class GrammarError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Op : uint8_t { Bytes, Rule, End };
struct Elem {
  Op op;
  uint32_t arg;  // Bytes: a byte class; Rule: a rule
};

class Grammar {
 public:
  // The start rule is "root". Throws GrammarError.
  static Grammar parse(std::string_view text);

  uint32_t root() const { return root_; }
  // Elements by position; every alternative ends with an End.
  const Elem& at(uint32_t pos) const { return flat_[pos]; }
  // The positions where a rule's alternatives begin.
  std::span<const uint32_t> alternatives(uint32_t rule) const { return alts_[rule]; }
  bool has(uint32_t byte_class, uint8_t b) const { return (classes_[byte_class][b >> 6] >> (b & 63)) & 1; }
  size_t rules() const { return alts_.size(); }
  size_t positions() const { return flat_.size(); }
  const std::string& rule_name(uint32_t rule) const { return names_[rule]; }

  // Limits on what a grammar may be (the text comes from clients, through the gateway).
  static constexpr size_t kMaxText = 1 << 20;
  static constexpr size_t kMaxPositions = 1 << 20;
  static constexpr uint32_t kMaxRepeat = 10000;

 private:
  friend class GrammarBuilder;
  std::vector<Elem> flat_;
  std::vector<std::vector<uint32_t>> alts_;
  std::vector<std::array<uint64_t, 4>> classes_;
  std::vector<std::string> names_;
  uint32_t root_ = 0;
};

// A grammar literal for `text` (quotes and escapes added), for grammar writers.
std::string literal(std::string_view text);

// `text` with every rule name, defined or referred to, starting with `prefix`
// (literals, byte classes, repetition counts and comments untouched): one
// grammar embedded in another, its start rule then `<prefix>root`.
std::string prefix_rules(std::string_view text, std::string_view prefix);

// Rules `<name>-0`, `<name>-1`, ...: from `<name>-0`, any text that does not
// contain `marker` (whose first byte must appear in it only there), then the
// marker itself when `then_marker`, else the text may end anywhere.
std::string text_without(std::string_view name, std::string_view marker, bool then_marker);

// A grammar whose sentences are reasoning, "</think>", optional space, then a
// sentence of `answer` (a grammar text): the answer's constraint applies after
// the think block of an R1-style model. `opened`: the prompt opened the block;
// else the answer may also come at once or after a "<think>" of its own.
std::string after_reasoning(std::string_view answer, bool opened);

}  // namespace moemesh::grammar
