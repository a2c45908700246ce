// The compressed latent KV cache of MLA, in pages. Each token of each layer keeps
// kv_lora_rank normalised latent values and qk_rope_head_dim rotated key values,
// never full keys and values, stored as f32, bf16 (the default, as DeepSeek's
// reference stores it) or fp8-e4m3 with one scale per token and part (latent,
// rope): half the memory of bf16. Sequences hold lists of pages; a page has a
// reference count, so full pages of a shared prefix can be held by several
// sequences and by the prefix cache at once (read-only: a sequence writes only
// past its length, and a shared page is a full one below it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moemesh {

using SeqId = uint64_t;

enum class KvCacheDtype { F32, BF16, FP8 };
const char* kv_cache_dtype_name(KvCacheDtype t);
std::optional<KvCacheDtype> kv_cache_dtype_from_name(std::string_view s);

struct KvCacheGeometry {
  int64_t layers = 1;
  int64_t latent = 0;  // kv_lora_rank
  int64_t rope = 0;    // qk_rope_head_dim
  int64_t page_tokens = 64;
  int64_t pages = 1;
  KvCacheDtype dtype = KvCacheDtype::BF16;
  int64_t dim() const { return latent + rope; }
};

class LatentKvCache {
 public:
  explicit LatentKvCache(const KvCacheGeometry& g);
  // bf16 rows of `dim` values (one part).
  LatentKvCache(int64_t n_layers, int64_t dim, int64_t page_tokens, int64_t n_pages);

  int64_t layers() const { return g_.layers; }
  int64_t dim() const { return g_.dim(); }
  int64_t latent_dim() const { return g_.latent; }
  int64_t rope_dim() const { return g_.rope; }
  KvCacheDtype dtype() const { return g_.dtype; }
  int64_t page_tokens() const { return g_.page_tokens; }
  int64_t total_pages() const { return g_.pages; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_pages() const { return g_.pages - free_pages(); }
  int64_t pages_for(int64_t tokens) const { return (tokens + g_.page_tokens - 1) / g_.page_tokens; }
  // Bytes of one page (every layer), and what one token costs.
  size_t page_bytes() const { return static_cast<size_t>(g_.layers) * layer_block_bytes_; }
  double bytes_per_token() const { return static_cast<double>(page_bytes()) / static_cast<double>(g_.page_tokens); }

  bool has(SeqId s) const { return seqs_.count(s) != 0; }
  int64_t length(SeqId s) const;
  // Makes room for `tokens` tokens in total; false (and nothing changed) when the
  // free pages do not suffice even after asking the reclaimer for more.
  bool reserve(SeqId s, int64_t tokens);
  // Starts sequence s (which must not exist) on full pages held elsewhere:
  // each gets one more reference; the length is theirs in tokens.
  void adopt(SeqId s, const std::vector<int32_t>& pages);

  // Page references, for the prefix cache: a page returns to the free list
  // when its last reference goes.
  void ref_page(int32_t page);
  void unref_page(int32_t page);
  int32_t page_refs(int32_t page) const { return refs_.at(static_cast<size_t>(page)); }
  // Called by reserve() when free pages are short: frees at least `pages` more
  // if it can (e.g. by evicting cached prefixes); returns how many it freed.
  void set_reclaimer(std::function<int64_t(int64_t pages)> r) { reclaim_ = std::move(r); }
  // Marks the first `tokens` positions as written (within the reserved capacity).
  void set_length(SeqId s, int64_t tokens);
  // Forgets positions >= tokens (speculative rollback) and frees whole pages past them.
  void truncate(SeqId s, int64_t tokens);
  void release(SeqId s);
  std::vector<SeqId> sequences() const;

  // One token's dim() values (latent, then rope), rounded to the cache's dtype.
  void store(SeqId s, int64_t layer, int64_t pos, const float* values);
  // The stored values back as f32: what attention sees.
  void load(SeqId s, int64_t layer, int64_t pos, float* out) const;

  // One page of one layer: rows [page_tokens][dim] of the cache dtype (f32, bf16
  // or fp8 bytes); fp8 pages also carry scales [page_tokens][2] (latent, rope).
  struct PageView {
    const void* rows = nullptr;
    const float* scales = nullptr;
  };
  // Page `index` (positions index·page_tokens ..) of sequence s.
  PageView page(SeqId s, int64_t layer, int64_t index) const;

  // bf16 caches only: the raw row, and the layout [page][layer][slot][dim] for
  // copying the cache to a device as is; pages(s) the sequence's page ids in order.
  uint16_t* row_bf16(SeqId s, int64_t layer, int64_t pos);
  const uint8_t* storage() const { return storage_.get(); }
  size_t storage_bytes() const { return static_cast<size_t>(g_.pages) * page_bytes(); }
  const std::vector<int32_t>& pages(SeqId s) const { return seq(s).pages; }

 private:
  struct Seq {
    std::vector<int32_t> pages;
    int64_t length = 0;
  };
  const Seq& seq(SeqId s) const;
  uint8_t* slot_row(SeqId s, int64_t layer, int64_t pos, float** scales, int32_t* page_id = nullptr) const;

  KvCacheGeometry g_;
  size_t elem_bytes_ = 2, rows_bytes_ = 0, layer_block_bytes_ = 0;
  std::unique_ptr<uint8_t[]> storage_;  // [page][layer]{rows, scales}, untouched until used
  std::vector<int32_t> free_;
  std::vector<int32_t> refs_;  // per page: sequences and cache entries holding it
  std::function<int64_t(int64_t)> reclaim_;
  std::unordered_map<SeqId, Seq> seqs_;
};

}  // namespace moemesh
