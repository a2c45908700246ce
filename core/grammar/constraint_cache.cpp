#include "core/grammar/constraint_cache.h"

namespace moemesh::grammar {

std::shared_ptr<TokenMasks> ConstraintCache::get(const std::string& text) {
  auto it = map_.find(text);
  if (it != map_.end()) {
    order_.splice(order_.begin(), order_, it->second.second);
    return it->second.first;
  }
  auto masks = std::make_shared<TokenMasks>(std::make_shared<const Grammar>(Grammar::parse(text)), vocab_);
  order_.push_front(text);
  map_.emplace(text, std::make_pair(masks, order_.begin()));
  while (map_.size() > capacity_) {
    map_.erase(order_.back());
    order_.pop_back();
  }
  return masks;
}

}  // namespace moemesh::grammar
