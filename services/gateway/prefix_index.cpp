#include "prefix_index.h"

#include <algorithm>
#include <vector>

namespace moemesh {
namespace {

// FNV-1a over the block's ids, chained from the previous block's hash: a
// block's name covers everything before it, as a radix tree's path does.
uint64_t chain(uint64_t h, std::span<const int32_t> block) {
  for (int32_t t : block) {
    auto u = static_cast<uint32_t>(t);
    for (int b = 0; b < 4; ++b) {
      h ^= (u >> (8 * b)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  return h;
}
constexpr uint64_t kSeed = 14695981039346656037ull;

}  // namespace

void PrefixIndex::insert(std::span<const int32_t> tokens) {
  uint64_t h = kSeed;
  ++clock_;
  for (size_t at = 0; at + kBlock <= tokens.size(); at += kBlock) {
    h = chain(h, tokens.subspan(at, kBlock));
    blocks_[h] = clock_;
  }
  if (blocks_.size() > max_blocks_) evict();
}

int64_t PrefixIndex::match(std::span<const int32_t> tokens) const {
  uint64_t h = kSeed;
  int64_t matched = 0;
  for (size_t at = 0; at + kBlock <= tokens.size(); at += kBlock) {
    h = chain(h, tokens.subspan(at, kBlock));
    if (!blocks_.count(h)) break;
    matched += kBlock;
  }
  return matched;
}

// Least recently used quarter out at once, so eviction's scan is rare.
void PrefixIndex::evict() {
  std::vector<uint64_t> uses;
  uses.reserve(blocks_.size());
  for (const auto& [h, t] : blocks_) uses.push_back(t);
  const size_t cut = uses.size() / 4;
  std::nth_element(uses.begin(), uses.begin() + static_cast<std::ptrdiff_t>(cut), uses.end());
  const uint64_t below = uses[cut];
  for (auto it = blocks_.begin(); it != blocks_.end();) it = it->second < below ? blocks_.erase(it) : std::next(it);
}

}  // namespace moemesh
