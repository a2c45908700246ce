#include "model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/dtype.h"
#include "kernels/cpu/convert.h"

namespace moemesh {

const char* kv_cache_dtype_name(KvCacheDtype t) {
  switch (t) {
    case KvCacheDtype::F32: return "f32";
    case KvCacheDtype::BF16: return "bf16";
    case KvCacheDtype::FP8: return "fp8";
  }
  return "?";
}

std::optional<KvCacheDtype> kv_cache_dtype_from_name(std::string_view s) {
  if (s == "f32") return KvCacheDtype::F32;
  if (s == "bf16") return KvCacheDtype::BF16;
  if (s == "fp8") return KvCacheDtype::FP8;
  return std::nullopt;
}

LatentKvCache::LatentKvCache(int64_t n_layers, int64_t dim, int64_t page_tokens, int64_t n_pages)
    : LatentKvCache(KvCacheGeometry{n_layers, dim, 0, page_tokens, n_pages, KvCacheDtype::BF16}) {}

LatentKvCache::LatentKvCache(const KvCacheGeometry& g) : g_(g) {
  if (g.layers <= 0 || g.dim() <= 0 || g.latent < 0 || g.rope < 0 || g.page_tokens <= 0 || g.pages <= 0)
    throw std::invalid_argument("kv cache: layers, dim, page size and pages must be positive");
  elem_bytes_ = g.dtype == KvCacheDtype::F32 ? 4 : g.dtype == KvCacheDtype::BF16 ? 2 : 1;
  rows_bytes_ = static_cast<size_t>(g.page_tokens * g.dim()) * elem_bytes_;
  layer_block_bytes_ = rows_bytes_;
  if (g.dtype == KvCacheDtype::FP8) {
    rows_bytes_ = (rows_bytes_ + 63) / 64 * 64;  // scales stay aligned
    layer_block_bytes_ = rows_bytes_ + static_cast<size_t>(g.page_tokens) * 2 * sizeof(float);
  }
  storage_.reset(new uint8_t[storage_bytes()]);
  free_.reserve(g.pages);
  refs_.assign(static_cast<size_t>(g.pages), 0);
  for (int64_t p = g.pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
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
  auto it = seqs_.find(s);
  const int64_t have = it == seqs_.end() ? 0 : static_cast<int64_t>(it->second.pages.size());
  const int64_t need = pages_for(tokens) - have;
  if (need > free_pages() && reclaim_) reclaim_(need - free_pages());
  if (need > free_pages()) return false;
  if (it == seqs_.end()) {
    it = seqs_.emplace(s, Seq{}).first;
    // Room for the page list up front: growing it later would allocate in a decode step.
    it->second.pages.reserve(static_cast<size_t>(std::min<int64_t>(g_.pages, 4096)));
  }
  Seq& q = it->second;
  for (int64_t i = 0; i < need; ++i) {
    q.pages.push_back(free_.back());
    refs_[static_cast<size_t>(free_.back())] = 1;
    free_.pop_back();
  }
  return true;
}

void LatentKvCache::adopt(SeqId s, const std::vector<int32_t>& pages) {
  if (seqs_.count(s)) throw std::logic_error("kv cache: adopt onto an existing sequence " + std::to_string(s));
  Seq& q = seqs_.emplace(s, Seq{}).first->second;
  q.pages.reserve(static_cast<size_t>(std::min<int64_t>(g_.pages, 4096)));
  for (int32_t p : pages) {
    ref_page(p);
    q.pages.push_back(p);
  }
  q.length = static_cast<int64_t>(pages.size()) * g_.page_tokens;
}

void LatentKvCache::ref_page(int32_t page) {
  if (page < 0 || page >= g_.pages || refs_[static_cast<size_t>(page)] <= 0)
    throw std::logic_error("kv cache: a reference to page " + std::to_string(page) + ", which is free");
  ++refs_[static_cast<size_t>(page)];
}

void LatentKvCache::unref_page(int32_t page) {
  if (page < 0 || page >= g_.pages || refs_[static_cast<size_t>(page)] <= 0)
    throw std::logic_error("kv cache: page " + std::to_string(page) + " released twice");
  if (--refs_[static_cast<size_t>(page)] == 0) free_.push_back(page);
}

void LatentKvCache::set_length(SeqId s, int64_t tokens) {
  Seq& q = const_cast<Seq&>(seq(s));
  if (tokens > static_cast<int64_t>(q.pages.size()) * g_.page_tokens)
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
    unref_page(q.pages.back());
    q.pages.pop_back();
  }
}

void LatentKvCache::release(SeqId s) {
  auto it = seqs_.find(s);
  if (it == seqs_.end()) return;
  for (int32_t p : it->second.pages) unref_page(p);
  seqs_.erase(it);
}

std::vector<SeqId> LatentKvCache::sequences() const {
  std::vector<SeqId> out;
  for (const auto& [id, _] : seqs_) out.push_back(id);
  return out;
}

uint8_t* LatentKvCache::slot_row(SeqId s, int64_t layer, int64_t pos, float** scales, int32_t* page_id) const {
  const Seq& q = seq(s);
  const int64_t page = pos / g_.page_tokens, slot = pos % g_.page_tokens;
  if (pos < 0 || page >= static_cast<int64_t>(q.pages.size()) || layer < 0 || layer >= g_.layers)
    throw std::out_of_range("kv cache: position or layer outside the sequence's pages");
  uint8_t* block = storage_.get() + static_cast<size_t>(q.pages[page]) * page_bytes() + layer * layer_block_bytes_;
  if (scales) *scales = reinterpret_cast<float*>(block + rows_bytes_) + 2 * slot;
  if (page_id) *page_id = q.pages[page];
  return block + static_cast<size_t>(slot * g_.dim()) * elem_bytes_;
}

void LatentKvCache::store(SeqId s, int64_t layer, int64_t pos, const float* v) {
  float* scales = nullptr;
  int32_t page = -1;
  uint8_t* row = slot_row(s, layer, pos, &scales, &page);
  if (refs_[static_cast<size_t>(page)] > 1)
    throw std::logic_error("kv cache: a write into a shared page (sequence " + std::to_string(s) + ", position " +
                           std::to_string(pos) + ")");
  const int64_t D = g_.dim();
  switch (g_.dtype) {
    case KvCacheDtype::F32: std::memcpy(row, v, D * sizeof(float)); break;
    case KvCacheDtype::BF16: {
      uint16_t* r = reinterpret_cast<uint16_t*>(row);
      for (int64_t d = 0; d < D; ++d) r[d] = f32_to_bf16(v[d]);
      break;
    }
    case KvCacheDtype::FP8: {
      // One scale per part: the rope keys are not normalised like the latents.
      const int64_t parts[3] = {0, g_.latent, D};
      for (int p = 0; p < 2; ++p) {
        float amax = 0.0f;
        for (int64_t d = parts[p]; d < parts[p + 1]; ++d) amax = std::max(amax, std::fabs(v[d]));
        const float scale = amax > 0.0f && std::isfinite(amax) ? amax / kFp8E4M3Max : 1.0f;
        for (int64_t d = parts[p]; d < parts[p + 1]; ++d) row[d] = f32_to_fp8e4m3(v[d] / scale);
        scales[p] = scale;
      }
      break;
    }
  }
}

void LatentKvCache::load(SeqId s, int64_t layer, int64_t pos, float* out) const {
  float* scales = nullptr;
  const uint8_t* row = slot_row(s, layer, pos, &scales);
  const int64_t D = g_.dim();
  switch (g_.dtype) {
    case KvCacheDtype::F32: std::memcpy(out, row, D * sizeof(float)); break;
    case KvCacheDtype::BF16: {
      const uint16_t* r = reinterpret_cast<const uint16_t*>(row);
      for (int64_t d = 0; d < D; ++d) out[d] = bf16_to_f32(r[d]);
      break;
    }
    case KvCacheDtype::FP8:
      cpu::dequantize_fp8(row, g_.latent, scales[0], out);
      cpu::dequantize_fp8(row + g_.latent, g_.rope, scales[1], out + g_.latent);
      break;
  }
}

LatentKvCache::PageView LatentKvCache::page(SeqId s, int64_t layer, int64_t index) const {
  float* scales = nullptr;
  const uint8_t* rows = slot_row(s, layer, index * g_.page_tokens, &scales);
  return {rows, g_.dtype == KvCacheDtype::FP8 ? scales : nullptr};
}

uint16_t* LatentKvCache::row_bf16(SeqId s, int64_t layer, int64_t pos) {
  if (g_.dtype != KvCacheDtype::BF16) throw std::logic_error("kv cache: row_bf16 on a cache that is not bf16");
  return reinterpret_cast<uint16_t*>(slot_row(s, layer, pos, nullptr));
}

}  // namespace moemesh
