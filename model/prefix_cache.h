// Reuse of the latent KV cache across requests: a radix tree over token ids
// whose every node is one full page of the paged cache (page_tokens tokens).
// A node's path from the root is the token prefix its page was computed for,
// so a page is valid for any sequence that starts with that path. Nodes hold a
// reference on their page; sequences adopt matched pages (one more reference
// each) and share them read-only. Pages only the tree holds are evicted, least
// recently used leaf first, whenever the cache runs short of free pages: cached
// pages never keep a new request out.
//
// Only full pages whose positions a sequence has committed enter the tree, so
// speculative drafts past the committed length (rolled back or not) never do.
// Evicted pages are freed; a host-memory or disk tier would take them here.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/kv_cache.h"

namespace moemesh {

struct PrefixCacheStats {
  uint64_t lookups = 0, lookup_tokens = 0;  // requests matched, and their prompt tokens
  uint64_t hit_tokens = 0;                  // prompt tokens served from the cache
  uint64_t inserted_pages = 0, evicted_pages = 0;
  int64_t pages = 0;  // nodes (pages) the tree holds now
};

class PrefixCache {
 public:
  // Becomes `cache`'s reclaimer; `cache` must outlive it.
  explicit PrefixCache(LatentKvCache& cache);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // The pages of the longest cached prefix of tokens[0..n) in whole pages, at
  // most max_tokens tokens; marks them used now.
  std::vector<int32_t> match(const int32_t* tokens, int64_t n, int64_t max_tokens);
  // Counts a request admitted with `prompt_tokens`, `hit_tokens` of them matched.
  void record(int64_t prompt_tokens, int64_t hit_tokens);
  // Enters the first pages.size() full pages of `tokens` (the prefix whose KV
  // the pages hold, page i covering tokens [i·P, (i+1)·P)). A page already
  // cached under the same prefix stays; the new one is then not taken.
  void insert(const int32_t* tokens, const std::vector<int32_t>& pages);
  // Frees up to `pages` pages that only the tree holds, least recently used
  // first; returns how many it freed.
  int64_t evict(int64_t pages);
  // Drops every entry the tree alone holds (all of them when no sequence runs).
  void clear() { evict(INT64_MAX); }

  const PrefixCacheStats& stats() const { return stats_; }
  // Pages no sequence shares with the tree: free for the taking under pressure.
  int64_t idle_pages() const;
  int64_t page_tokens() const { return cache_.page_tokens(); }

 private:
  struct Node;
  struct KeyHash {
    size_t operator()(const std::vector<int32_t>& k) const;
  };
  struct Node {
    Node* parent = nullptr;
    std::vector<int32_t> key;  // this page's tokens
    int32_t page = -1;
    uint64_t used = 0;  // tick of the last match or insert through it
    std::unordered_map<std::vector<int32_t>, std::unique_ptr<Node>, KeyHash> children;
  };
  void touch(Node* n);
  void set_leaf(Node* n, bool leaf);

  LatentKvCache& cache_;
  Node root_;
  uint64_t tick_ = 0;
  std::set<std::pair<uint64_t, Node*>> leaves_;  // by last use: eviction order
  PrefixCacheStats stats_;
};

}  // namespace moemesh
