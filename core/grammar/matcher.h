// Where a text stands in a grammar: the set of parse stacks the bytes so far
// leave (a pushdown automaton run on every alternative at once). Each stack
// lists positions, the innermost last; after every byte the stacks are
// expanded until each waits on a byte class, so a stack's top is always a byte
// class. An empty stack means the text so far is a whole sentence.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/grammar/grammar.h"

namespace moemesh::grammar {

using Stack = std::vector<uint32_t>;

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> g);

  // Takes the bytes if the text stays a prefix of some sentence; else returns
  // false and changes nothing.
  bool accept(std::string_view bytes);
  bool accept_byte(uint8_t b);
  // The text so far is a whole sentence (it may still go on).
  bool accepting() const;
  // Some byte may follow.
  bool can_continue() const;
  const std::vector<Stack>& stacks() const { return stacks_; }
  const Grammar& grammar() const { return *g_; }

  // The stacks after `bytes` from `from` (empty: rejected). With `bottom`, the
  // stacks are taken as the tops of longer ones: one that pops empty is
  // dropped and *bottom set instead (the rest depends on the frames below).
  static std::vector<Stack> advance(const Grammar& g, std::vector<Stack> from, std::string_view bytes, bool* bottom = nullptr);
  // `s` expanded until every stack waits on bytes (or is empty: accepted).
  static void expand(const Grammar& g, Stack s, std::vector<Stack>& out, bool* bottom);

  // Bounds on ambiguity: more stacks at once than this is refused (GrammarError).
  static constexpr size_t kMaxStacks = 4096;

 private:
  std::shared_ptr<const Grammar> g_;
  std::vector<Stack> stacks_;
};

}  // namespace moemesh::grammar
