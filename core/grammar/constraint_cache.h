// Grammars by their text, parsed once and kept with their token masks (the
// masks are the costly part, filled in as decoding reaches new positions), so
// that requests with the same schema share them. Least recently used out.
#pragma once

#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/grammar/token_mask.h"

namespace moemesh::grammar {

class ConstraintCache {
 public:
  explicit ConstraintCache(std::shared_ptr<const TokenBytes> vocab, size_t capacity = 64)
      : vocab_(std::move(vocab)), capacity_(capacity) {}
  // Throws GrammarError for a grammar that does not parse.
  std::shared_ptr<TokenMasks> get(const std::string& text);
  size_t size() const { return map_.size(); }

 private:
  std::shared_ptr<const TokenBytes> vocab_;
  size_t capacity_;
  std::list<std::string> order_;  // most recent first
  std::unordered_map<std::string, std::pair<std::shared_ptr<TokenMasks>, std::list<std::string>::iterator>> map_;
};

}  // namespace moemesh::grammar
