// The compressed latent KV cache of MLA, in pages. Each token of each layer keeps
// kv_lora_rank normalised latent values and qk_rope_head_dim rotated key values
// (bf16), never full keys and values. Sequences own lists of pages.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace moemesh {

using SeqId = uint64_t;

class LatentKvCache {
 public:
  LatentKvCache(int64_t n_layers, int64_t dim, int64_t page_tokens, int64_t n_pages);

  int64_t layers() const { return n_layers_; }
  int64_t dim() const { return dim_; }
  int64_t page_tokens() const { return page_tokens_; }
  int64_t total_pages() const { return n_pages_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_pages() const { return n_pages_ - free_pages(); }
  int64_t pages_for(int64_t tokens) const { return (tokens + page_tokens_ - 1) / page_tokens_; }

  bool has(SeqId s) const { return seqs_.count(s) != 0; }
  int64_t length(SeqId s) const;
  // Makes room for `tokens` tokens in total; false (and nothing changed) when the
  // free pages do not suffice.
  bool reserve(SeqId s, int64_t tokens);
  // Marks the first `tokens` positions as written (within the reserved capacity).
  void set_length(SeqId s, int64_t tokens);
  // Forgets positions >= tokens (speculative rollback) and frees whole pages past them.
  void truncate(SeqId s, int64_t tokens);
  void release(SeqId s);
  std::vector<SeqId> sequences() const;

  uint16_t* row(SeqId s, int64_t layer, int64_t pos);
  const uint16_t* row(SeqId s, int64_t layer, int64_t pos) const;

  // The raw layout, for copying the cache to a device as is: storage() is
  // [page][layer][slot][dim], pages(s) the sequence's page ids in order.
  const uint16_t* storage() const { return storage_.get(); }
  size_t storage_bytes() const { return static_cast<size_t>(n_pages_ * n_layers_ * page_tokens_ * dim_) * 2; }
  const std::vector<int32_t>& pages(SeqId s) const { return seq(s).pages; }

 private:
  struct Seq {
    std::vector<int32_t> pages;
    int64_t length = 0;
  };
  const Seq& seq(SeqId s) const;
  uint16_t* page_row(int32_t page, int64_t layer, int64_t slot) const;

  int64_t n_layers_, dim_, page_tokens_, n_pages_;
  std::unique_ptr<uint16_t[]> storage_;  // [page][layer][slot][dim], untouched until used
  std::vector<int32_t> free_;
  std::unordered_map<SeqId, Seq> seqs_;
};

}  // namespace moemesh
