// Decode-sized products (a few activation rows): every weight byte is read once,
// straight from the checkpoint's row-major layout, converted in registers and
// used at once. Written once over the vector primitives V (simd/avx2.h,
// simd/avx512.h); instantiated per instruction set in linear_<isa>.cpp.
//
// Why it streams at memory speed: a tile is R consecutive weight rows (one
// contiguous run of memory); MR·R ≥ 8 independent accumulators cover the FMA
// latency; a weight chunk is converted without lane-crossing shuffles, in an
// order the activations are permuted to once per call, instead of shuffling
// every weight into natural order; fp8 block scales multiply the activations
// (once per 128×128 block), never the weights; the tile's sums are reduced
// together at its end, not one row at a time.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/kernel_scratch.h"

namespace moemesh::cpu::detail {

// Element (o, k) of a weight of storage type T with K columns, its real value
// (block scale applied): the columns past a row's last whole chunk, inline.
template <DType T>
inline float element_real(const LinearWeight& w, int64_t o, int64_t k, int64_t K) {
  const void* data = w.w.data;
  const int64_t i = o * K + k;
  float v;
  if constexpr (T == DType::BF16) v = bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
  else if constexpr (T == DType::F16) v = f16_to_f32(static_cast<const uint16_t*>(data)[i]);
  else if constexpr (T == DType::F8_E4M3) v = fp8e4m3_to_f32(static_cast<const uint8_t*>(data)[i]);
  else v = static_cast<const float*>(data)[i];
  if (w.scale_inv) v *= w.scale_inv[(o / LinearWeight::kBlock) * w.scale_cols + k / LinearWeight::kBlock];
  return v;
}

// How one chunk of a weight row becomes f32 vectors: CW weights per row, NV vectors,
// vector v lane l holding the weight at column order(v, l) of the chunk.
template <class V, DType T>
struct Chunk;

template <class V>
struct Chunk<V, DType::BF16> {
  static constexpr int NV = 2, CW = 2 * V::kLanes;
  static void load(const uint8_t* p, typename V::F* out) { V::bf16_pairs(p, out[0], out[1]); }
  static int order(int v, int l) { return 2 * l + v; }
};
template <class V>
struct Chunk<V, DType::F8_E4M3> {
  static constexpr int NV = 2, CW = 2 * V::kLanes;
  static void load(const uint8_t* p, typename V::F* out) { V::fp8_pairs(p, out[0], out[1]); }
  static int order(int v, int l) { return 2 * l + v; }
};
template <class V>
struct Chunk<V, DType::F16> {
  static constexpr int NV = 1, CW = V::kLanes;
  static void load(const uint8_t* p, typename V::F* out) { out[0] = V::f16s(p); }
  static int order(int, int l) { return l; }
};
template <class V>
struct Chunk<V, DType::F32> {
  static constexpr int NV = 1, CW = V::kLanes;
  static void load(const uint8_t* p, typename V::F* out) { out[0] = V::f32s(p); }
  static int order(int, int l) { return l; }
};

// fp8 chunks come out as value × 2⁻¹²⁰; the activations carry 2⁶⁴ (so no product
// underflows) and the sums get the remaining 2⁵⁶ back.
constexpr float kFp8ActivationGain = 18446744073709551616.0f;  // 2^64
constexpr float kFp8SumGain = 72057594037927936.0f;             // 2^56

// Reduces n accumulators into out[0..n).
template <class V>
inline void reduce_into(const typename V::F* acc, int n, float* out) {
  int j = 0;
  for (; j + 8 <= n; j += 8) V::hsum8(acc + j, out + j);
  for (; j + 4 <= n; j += 4) V::hsum4(acc + j, out + j);
  for (; j < n; ++j) out[j] = V::hsum(acc[j]);
}

// out[i * R + r] = Σ over `chunks` chunks of the weight row at w + r·row_stride
// (bytes) · activation row i, whose chunk c lies at xp + c·ldp + i·CW (the
// permuted activations are interleaved by chunk, so every load of a chunk comes
// from one base address). SPLIT accumulators per output (1 or 2) set how many FMA
// chains run side by side: MR·R·SPLIT of them.
template <class V, DType T, int MR, int R, int SPLIT>
inline void direct_tile(const float* xp, int64_t ldp, const uint8_t* w, int64_t row_stride, int64_t chunks,
                        float* out) {
  using C = Chunk<V, T>;
  using F = typename V::F;
  constexpr int64_t chunk_bytes = C::CW * static_cast<int64_t>(dtype_size(T));
  F acc[MR * R * SPLIT];
#pragma GCC unroll 32
  for (int j = 0; j < MR * R * SPLIT; ++j) acc[j] = V::zero();
  for (int64_t c = 0; c < chunks; ++c) {
    const uint8_t* wc = w + c * chunk_bytes;
    const float* xc = xp + c * ldp;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      F wv[C::NV];
      C::load(wc + r * row_stride, wv);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < C::NV; ++v) {
          F& a = acc[(i * R + r) * SPLIT + v % SPLIT];
          a = V::fma(wv[v], V::load(xc + i * C::CW + v * V::kLanes), a);
        }
    }
  }
  if constexpr (SPLIT == 2) {
#pragma GCC unroll 32
    for (int j = 0; j < MR * R; ++j) acc[j] = V::add(acc[2 * j], acc[2 * j + 1]);
  }
  reduce_into<V>(acc, MR * R, out);
}

// Writes xp[(c·m + i)·CW + v·L + l] = gain · scale(kb) · x[i][c·CW + order(v, l)]
// for the vectorised columns (scale from the 128-row block `ob` when the weight
// has block scales, else 1): chunk c of every row together.
template <class V, DType T>
inline void permute_activations(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t ob,
                                int64_t chunks, float gain, float* xp) {
  using C = Chunk<V, T>;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t k0 = c * C::CW;
      // CW divides 128, so a chunk never straddles a scale block.
      const float s = gain * (w.scale_inv ? w.scale_inv[ob * w.scale_cols + k0 / LinearWeight::kBlock] : 1.0f);
      float* dst = xp + (c * m + i) * C::CW;
      for (int v = 0; v < C::NV; ++v)
        for (int l = 0; l < V::kLanes; ++l) dst[v * V::kLanes + l] = s * x[i * ldx + k0 + C::order(v, l)];
    }
}

// The tile shape per activation row count: 8 FMA chains in flight (4-cycle
// latency, 2 FMAs a cycle) within 16 vector registers.
template <int MR>
struct TileShape {
  static constexpr int R = MR == 1 ? 4 : MR == 2 ? 4 : 2;
  static constexpr int SPLIT = MR == 1 ? 2 : 1;
};

template <class V, DType T, int MR>
void direct_rows_t(const float* x, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                   int64_t ldy) {
  using C = Chunk<V, T>;
  constexpr int R = TileShape<MR>::R, SPLIT = TileShape<MR>::SPLIT;
  const int64_t K = w.in();
  const int64_t chunks = K / C::CW, kv = chunks * C::CW;
  const int64_t row_bytes = K * static_cast<int64_t>(dtype_size(T));
  const bool fp8 = T == DType::F8_E4M3;
  const float gain = fp8 ? kFp8ActivationGain : 1.0f, back = fp8 ? kFp8SumGain : 1.0f;
  float* xp = kernel_scratch(ScratchSlot::Activations, MR * kv + 16);
  const uint8_t* base = static_cast<const uint8_t*>(w.w.data);
  float sums[MR * R];
  auto emit = [&](int64_t o, int64_t i, float s) {
    for (int64_t k = kv; k < K; ++k) s += x[i * ldx + k] * element_real<T>(w, o, k, K);
    y[i * ldy + (o - o0)] = s;
  };
  // Runs of rows that share a block scale row (the whole range when unscaled).
  for (int64_t b0 = o0; b0 < o1;) {
    const int64_t ob = b0 / LinearWeight::kBlock;
    const int64_t b1 = w.scale_inv ? std::min(o1, (ob + 1) * LinearWeight::kBlock) : o1;
    if (w.scale_inv || b0 == o0) permute_activations<V, T>(x, MR, ldx, w, ob, chunks, gain, xp);
    const int64_t ldp = MR * C::CW;
    // The R rows of a tile come from R equal parts of the run, each walked in
    // order: R long sequential streams keep the prefetchers ahead, where R
    // consecutive short rows (1 KiB at K = 512) would be R streams of 16 lines.
    const int64_t q = (b1 - b0) / R;
    for (int64_t t = 0; t < q; ++t) {
      direct_tile<V, T, MR, R, SPLIT>(xp, ldp, base + (b0 + t) * row_bytes, q * row_bytes, chunks, sums);
      for (int i = 0; i < MR; ++i)
        for (int r = 0; r < R; ++r) emit(b0 + r * q + t, i, sums[i * R + r] * back);
    }
    for (int64_t o = b0 + R * q; o < b1; ++o) {
      direct_tile<V, T, MR, 1, 2>(xp, ldp, base + o * row_bytes, row_bytes, chunks, sums);
      for (int i = 0; i < MR; ++i) emit(o, i, sums[i] * back);
    }
    b0 = b1;
  }
}

// Tiles for a few more activation rows (5 .. kBlockedMaxRows): each weight row is
// converted once per group of up to 8 activation rows and used by all of them,
// with weight rows taken in blocks small enough to stay in L1/L2 while every
// group passes over them (the weights come from memory once).
template <int MR>
struct BlockedTileShape {
  // Two weight rows share each activation load from 5 rows on (two FMAs per load).
  static constexpr int R = MR == 1 ? 4 : MR == 2 ? 4 : MR <= 6 ? 2 : 1;
  static constexpr int SPLIT = MR == 1 ? 2 : 1;
};
constexpr int64_t kBlockRows = 16;

template <class V, DType T, int MR>
void blocked_group(const float* x, int64_t ldx, const float* xp, int64_t ldp, int64_t kv, const LinearWeight& w,
                   int64_t b0, int64_t b1, int64_t o0, float back, float* y, int64_t ldy) {
  constexpr int R = BlockedTileShape<MR>::R, SPLIT = BlockedTileShape<MR>::SPLIT;
  const int64_t K = w.in(), chunks = kv / Chunk<V, T>::CW;
  const int64_t row_bytes = K * static_cast<int64_t>(dtype_size(T));
  const uint8_t* base = static_cast<const uint8_t*>(w.w.data);
  float sums[MR * R];
  auto emit = [&](int64_t o, int i, float s) {
    for (int64_t k = kv; k < K; ++k) s += x[i * ldx + k] * element_real<T>(w, o, k, K);
    y[i * ldy + (o - o0)] = s;
  };
  int64_t o = b0;
  for (; o + R <= b1; o += R) {
    direct_tile<V, T, MR, R, SPLIT>(xp, ldp, base + o * row_bytes, row_bytes, chunks, sums);
    for (int i = 0; i < MR; ++i)
      for (int r = 0; r < R; ++r) emit(o + r, i, sums[i * R + r] * back);
  }
  for (; o < b1; ++o) {
    direct_tile<V, T, MR, 1, 1>(xp, ldp, base + o * row_bytes, row_bytes, chunks, sums);
    for (int i = 0; i < MR; ++i) emit(o, i, sums[i] * back);
  }
}

template <class V, DType T>
void blocked_rows_t(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                    int64_t ldy) {
  using C = Chunk<V, T>;
  const int64_t K = w.in();
  const int64_t chunks = K / C::CW, kv = chunks * C::CW;
  const bool fp8 = T == DType::F8_E4M3;
  const float gain = fp8 ? kFp8ActivationGain : 1.0f, back = fp8 ? kFp8SumGain : 1.0f;
  float* xp = kernel_scratch(ScratchSlot::Activations, m * kv + 16);
  for (int64_t r0 = o0; r0 < o1;) {
    const int64_t ob = r0 / LinearWeight::kBlock;
    const int64_t r1 = w.scale_inv ? std::min(o1, (ob + 1) * LinearWeight::kBlock) : o1;
    if (w.scale_inv || r0 == o0) permute_activations<V, T>(x, m, ldx, w, ob, chunks, gain, xp);
    const int64_t ldp = m * C::CW;
    for (int64_t b0 = r0; b0 < r1; b0 += kBlockRows) {
      const int64_t b1 = std::min(r1, b0 + kBlockRows);
      for (int64_t i0 = 0; i0 < m; i0 += 6) {
        const float* xi = x + i0 * ldx;
        const float* pi = xp + i0 * C::CW;
        float* yi = y + i0 * ldy;
        switch (std::min<int64_t>(6, m - i0)) {
          case 1: blocked_group<V, T, 1>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
          case 2: blocked_group<V, T, 2>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
          case 3: blocked_group<V, T, 3>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
          case 4: blocked_group<V, T, 4>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
          case 5: blocked_group<V, T, 5>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
          case 6: blocked_group<V, T, 6>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
          case 7: blocked_group<V, T, 7>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
          default: blocked_group<V, T, 8>(xi, ldx, pi, ldp, kv, w, b0, b1, o0, back, yi, ldy); break;
        }
      }
    }
    r0 = r1;
  }
}

template <class V>
void blocked_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                  int64_t ldy) {
  switch (w.w.dtype) {
    case DType::BF16: blocked_rows_t<V, DType::BF16>(x, m, ldx, w, o0, o1, y, ldy); break;
    case DType::F8_E4M3: blocked_rows_t<V, DType::F8_E4M3>(x, m, ldx, w, o0, o1, y, ldy); break;
    case DType::F16: blocked_rows_t<V, DType::F16>(x, m, ldx, w, o0, o1, y, ldy); break;
    default: blocked_rows_t<V, DType::F32>(x, m, ldx, w, o0, o1, y, ldy); break;
  }
}

// y[i, o - o0] for o in [o0, o1), m ≤ 4 rows.
template <class V>
void direct_rows(const float* x, int64_t m, int64_t ldx, const LinearWeight& w, int64_t o0, int64_t o1, float* y,
                 int64_t ldy) {
  auto by_m = [&]<DType T>() {
    switch (m) {
      case 1: direct_rows_t<V, T, 1>(x, ldx, w, o0, o1, y, ldy); break;
      case 2: direct_rows_t<V, T, 2>(x, ldx, w, o0, o1, y, ldy); break;
      case 3: direct_rows_t<V, T, 3>(x, ldx, w, o0, o1, y, ldy); break;
      default: direct_rows_t<V, T, 4>(x, ldx, w, o0, o1, y, ldy); break;
    }
  };
  switch (w.w.dtype) {
    case DType::BF16: by_m.template operator()<DType::BF16>(); break;
    case DType::F8_E4M3: by_m.template operator()<DType::F8_E4M3>(); break;
    case DType::F16: by_m.template operator()<DType::F16>(); break;
    default: by_m.template operator()<DType::F32>(); break;
  }
}

}  // namespace moemesh::cpu::detail
