// Which tokens of a vocabulary a grammar allows next. Tokens are matched by
// their bytes; most of the work depends only on a parse stack's top few
// frames, not on those below, so it is done once per such top and kept
// (xgrammar's split of context-independent and context-dependent tokens): for
// each top, the tokens it accepts whole (allowed under any stack below), and
// the few that run past it (checked against the whole stack each time). Four
// frames hold a string's characters, its closing quote and the rule that loops
// over them, so inside strings only tokens that close the string are checked
// per step. The vocabulary is walked in sorted order, sharing the work of
// common prefixes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <map>
#include <vector>

#include "core/grammar/matcher.h"

namespace moemesh::grammar {

// The tokens as bytes; an empty entry is never allowed (special tokens, ids
// past the tokenizer's vocabulary).
class TokenBytes {
 public:
  explicit TokenBytes(std::vector<std::string> bytes);
  size_t size() const { return bytes_.size(); }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }

 private:
  friend class TokenMasks;
  std::vector<std::string> bytes_;
  std::vector<int32_t> sorted_;  // non-empty tokens by their bytes
  std::vector<uint32_t> lcp_;    // common prefix with the one before, in sorted_
};

// A bit per token.
using TokenSet = std::vector<uint64_t>;
inline bool allowed(const TokenSet& s, int32_t id) { return (s[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1; }

class TokenMasks {
 public:
  TokenMasks(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenBytes> vocab);

  // The tokens allowed after `m`'s text (stop tokens are the caller's: allowed
  // when m.accepting()). Thread-safe.
  void allowed_tokens(const Matcher& m, TokenSet& out);
  const std::shared_ptr<const Grammar>& grammar() const { return g_; }
  const TokenBytes& vocab() const { return *vocab_; }
  size_t positions_computed() const;
  static constexpr size_t kTopFrames = 4;

 private:
  struct PositionMask {
    TokenSet accepted;               // whole tokens the position's rule takes
    std::vector<int32_t> dependent;  // tokens that run past it
  };
  const PositionMask& position(const Stack& top);
  PositionMask compute(const Stack& top) const;

  std::shared_ptr<const Grammar> g_;
  std::shared_ptr<const TokenBytes> vocab_;
  mutable std::mutex mu_;
  std::map<Stack, std::unique_ptr<PositionMask>> cache_;  // by a stack's top frames
};

}  // namespace moemesh::grammar
