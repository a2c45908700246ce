#include "model/kv_cache.h"

#include <stdexcept>
#include <string>

namespace moemesh {

LatentKvCache::LatentKvCache(int64_t n_layers, int64_t dim, int64_t page_tokens, int64_t n_pages)
    : n_layers_(n_layers), dim_(dim), page_tokens_(page_tokens), n_pages_(n_pages) {
  if (n_layers <= 0 || dim <= 0 || page_tokens <= 0 || n_pages <= 0)
    throw std::invalid_argument("kv cache: layers, dim, page size and pages must be positive");
  storage_.reset(new uint16_t[static_cast<size_t>(n_pages * n_layers * page_tokens * dim)]);
  free_.reserve(n_pages);
  for (int64_t p = n_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

const LatentKvCache::Seq& LatentKvCache::seq(SeqId s) const {
  auto it = seqs_.find(s);
  if (it == seqs_.end()) throw std::out_of_range("kv cache: unknown sequence " + std::to_string(s));
  return it->second;
}

int64_t LatentKvCache::length(SeqId s) const {
  auto it = seqs_.find(s);
  return it == seqs_.end() ? 0 : it->second.length;
}

bool LatentKvCache::reserve(SeqId s, int64_t tokens) {
  Seq& q = seqs_[s];
  const int64_t need = pages_for(tokens) - static_cast<int64_t>(q.pages.size());
  if (need > free_pages()) {
    if (q.pages.empty() && q.length == 0) seqs_.erase(s);
    return false;
  }
  for (int64_t i = 0; i < need; ++i) {
    q.pages.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void LatentKvCache::set_length(SeqId s, int64_t tokens) {
  Seq& q = const_cast<Seq&>(seq(s));
  if (tokens > static_cast<int64_t>(q.pages.size()) * page_tokens_)
    throw std::out_of_range("kv cache: length beyond reserved pages");
  q.length = tokens;
}

void LatentKvCache::truncate(SeqId s, int64_t tokens) {
  auto it = seqs_.find(s);
  if (it == seqs_.end()) return;
  Seq& q = it->second;
  if (tokens < q.length) q.length = tokens;
  const int64_t keep = pages_for(q.length);
  while (static_cast<int64_t>(q.pages.size()) > keep) {
    free_.push_back(q.pages.back());
    q.pages.pop_back();
  }
}

void LatentKvCache::release(SeqId s) {
  auto it = seqs_.find(s);
  if (it == seqs_.end()) return;
  for (int32_t p : it->second.pages) free_.push_back(p);
  seqs_.erase(it);
}

std::vector<SeqId> LatentKvCache::sequences() const {
  std::vector<SeqId> out;
  for (const auto& [id, _] : seqs_) out.push_back(id);
  return out;
}

uint16_t* LatentKvCache::page_row(int32_t page, int64_t layer, int64_t slot) const {
  return storage_.get() + ((static_cast<int64_t>(page) * n_layers_ + layer) * page_tokens_ + slot) * dim_;
}

uint16_t* LatentKvCache::row(SeqId s, int64_t layer, int64_t pos) {
  const Seq& q = seq(s);
  const int64_t page = pos / page_tokens_;
  if (pos < 0 || page >= static_cast<int64_t>(q.pages.size()) || layer < 0 || layer >= n_layers_)
    throw std::out_of_range("kv cache: position or layer outside the sequence's pages");
  return page_row(q.pages[page], layer, pos % page_tokens_);
}

const uint16_t* LatentKvCache::row(SeqId s, int64_t layer, int64_t pos) const {
  return const_cast<LatentKvCache*>(this)->row(s, layer, pos);
}

}  // namespace moemesh
