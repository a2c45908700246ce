// What the gateway remembers of the prompts it sent one attention replica:
// an approximate radix tree (SGLang's router keeps one per replica) with a node
// per 16-token block, each named by a hash of the whole prefix up to its end,
// so the longest cached prefix of a new request is found a block at a time.
// Approximate: the replica may have evicted pages it still lists, and hash
// collisions are possible (both only make the choice worse, never wrong).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>

namespace moemesh {

class PrefixIndex {
 public:
  static constexpr int64_t kBlock = 16;
  explicit PrefixIndex(size_t max_blocks = 1 << 16) : max_blocks_(max_blocks) {}

  // Remembers every whole block of `tokens` as sent to the replica.
  void insert(std::span<const int32_t> tokens);
  // Tokens of `tokens`' longest remembered prefix (a multiple of kBlock).
  int64_t match(std::span<const int32_t> tokens) const;
  size_t blocks() const { return blocks_.size(); }

 private:
  void evict();
  size_t max_blocks_;
  uint64_t clock_ = 0;
  std::unordered_map<uint64_t, uint64_t> blocks_;  // prefix hash -> last use
};

}  // namespace moemesh
