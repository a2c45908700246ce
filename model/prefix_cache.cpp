#include "model/prefix_cache.h"

#include <algorithm>

namespace moemesh {

size_t PrefixCache::KeyHash::operator()(const std::vector<int32_t>& k) const {
  // FNV-1a over the ids: keys are short (one page) and looked up a page at a time.
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : k) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

PrefixCache::PrefixCache(LatentKvCache& cache) : cache_(cache) {
  cache_.set_reclaimer([this](int64_t pages) { return evict(pages); });
}

PrefixCache::~PrefixCache() {
  cache_.set_reclaimer(nullptr);
  // Every node gives its page back; sequences still holding one keep it.
  std::vector<Node*> stack{&root_};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& [_, c] : n->children) stack.push_back(c.get());
    if (n != &root_) cache_.unref_page(n->page);
  }
}

int64_t PrefixCache::idle_pages() const {
  int64_t n = 0;
  std::vector<const Node*> stack{&root_};
  while (!stack.empty()) {
    const Node* at = stack.back();
    stack.pop_back();
    for (const auto& [_, c] : at->children) stack.push_back(c.get());
    if (at != &root_ && cache_.page_refs(at->page) == 1) ++n;
  }
  return n;
}

void PrefixCache::set_leaf(Node* n, bool leaf) {
  if (n == &root_) return;
  if (leaf) leaves_.emplace(n->used, n);
  else leaves_.erase({n->used, n});
}

void PrefixCache::touch(Node* n) {
  const bool leaf = n != &root_ && n->children.empty();
  if (leaf) set_leaf(n, false);
  n->used = tick_;
  if (leaf) set_leaf(n, true);
}

std::vector<int32_t> PrefixCache::match(const int32_t* tokens, int64_t n, int64_t max_tokens) {
  const int64_t P = cache_.page_tokens();
  ++tick_;
  std::vector<int32_t> pages;
  Node* at = &root_;
  std::vector<int32_t> key(static_cast<size_t>(P));
  for (int64_t i = 0; (i + 1) * P <= std::min(n, max_tokens); ++i) {
    key.assign(tokens + i * P, tokens + (i + 1) * P);
    auto it = at->children.find(key);
    if (it == at->children.end()) break;
    at = it->second.get();
    touch(at);
    pages.push_back(at->page);
  }
  return pages;
}

void PrefixCache::record(int64_t prompt_tokens, int64_t hit_tokens) {
  ++stats_.lookups;
  stats_.lookup_tokens += static_cast<uint64_t>(prompt_tokens);
  stats_.hit_tokens += static_cast<uint64_t>(hit_tokens);
}

void PrefixCache::insert(const int32_t* tokens, const std::vector<int32_t>& pages) {
  const int64_t P = cache_.page_tokens();
  ++tick_;
  Node* at = &root_;
  std::vector<int32_t> key;
  for (size_t i = 0; i < pages.size(); ++i) {
    key.assign(tokens + static_cast<int64_t>(i) * P, tokens + static_cast<int64_t>(i + 1) * P);
    auto it = at->children.find(key);
    if (it == at->children.end()) {
      auto node = std::make_unique<Node>();
      node->parent = at;
      node->key = key;
      node->page = pages[i];
      node->used = tick_;
      cache_.ref_page(pages[i]);
      if (at->children.empty()) set_leaf(at, false);
      Node* raw = node.get();
      at->children.emplace(key, std::move(node));
      set_leaf(raw, true);
      ++stats_.inserted_pages;
      ++stats_.pages;
      at = raw;
    } else {
      at = it->second.get();
      touch(at);
    }
  }
}

int64_t PrefixCache::evict(int64_t pages) {
  int64_t freed = 0;
  while (freed < pages) {
    // The least recently used leaf that no sequence holds; its parent may then
    // become one (found on the next round, in its own place in the order).
    auto it = std::find_if(leaves_.begin(), leaves_.end(), [&](const auto& e) { return cache_.page_refs(e.second->page) == 1; });
    if (it == leaves_.end()) break;
    Node* n = it->second;
    leaves_.erase(it);
    Node* parent = n->parent;
    cache_.unref_page(n->page);
    const std::vector<int32_t> key = n->key;
    parent->children.erase(key);  // destroys n
    if (parent->children.empty()) set_leaf(parent, true);
    ++freed;
    ++stats_.evicted_pages;
    --stats_.pages;
  }
  return freed;
}

}  // namespace moemesh
