// The CUDA backend's kernels behind the same semantics as kernels/cpu, in plain
// C++ (no CUDA headers). Pointers are device memory unless named host_*; every
// call is asynchronous on `s` (nullptr: the default stream). Accumulation is in
// f32, activations are f32 as on the CPU.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/cuda/device.h"

namespace moemesh::cpu {
struct GateParams;
}

namespace moemesh::cuda {

// ---- Row-wise ops (kernels/cpu/ops.h) ----

// y[r] = x[r] / rms(x[r]) * w over rows of n values (x and y may alias).
void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const float* w, float eps, float* y,
             int64_t ldy, Stream s = nullptr);

// out[i] = silu(gate[i]) * up[i], one pass (out may alias gate).
void silu_mul(const float* gate, const float* up, int64_t n, float* out, Stream s = nullptr);

// ---- RoPE (kernels/cpu/rope.h) ----

// Rotates interleaved pairs of `heads` vectors of `dim` values per token, as
// cpu::Rope::apply: token t starts at x + t·token_stride, head h at + h·head_stride,
// and is rotated by pos[t]. inv_freq: [dim/2], cpu::Rope::inv_freq() uploaded.
void rope(float* x, int64_t tokens, int64_t token_stride, int64_t heads, int64_t head_stride, int64_t dim,
          const int32_t* pos, const float* inv_freq, Stream s = nullptr);

// ---- MoE gate (kernels/cpu/topk_gate.h) ----

// cpu::GateParams as plain values for the device.
struct GateArgs {
  int32_t n_experts = 0, top_k = 0, n_group = 1, topk_group = 1;
  int32_t method = 2;   // 0 greedy, 1 group-limited greedy, 2 noaux_tc (TopkMethod order)
  bool sigmoid = true;  // else softmax
  bool normalize = true;
  bool scale_always = true;
  float scale = 1.0f;
};
GateArgs gate_args(const cpu::GateParams& p);
constexpr int kMaxGateExperts = 512;

// cpu::route_tokens: logits [tokens, n_experts], bias [n_experts] or null;
// indices and weights [tokens, top_k]; ties go to the lower expert index.
void route_tokens(const float* logits, int64_t tokens, const float* bias, const GateArgs& p, int32_t* indices,
                  float* weights, Stream s = nullptr);

// ---- Linear layers and the grouped expert GEMM (kernels/cpu/linear.h) ----

// A linear weight [out, in] on the device in its checkpoint dtype (F32, BF16,
// F16 or F8_E4M3); fp8 carries its 128×128 block scales like LinearWeight.
struct DeviceWeight {
  DType dtype = DType::F32;
  int64_t out = 0, in = 0;
  const void* data = nullptr;
  const float* scale_inv = nullptr;
  int64_t scale_cols = 0;
};

// A LinearWeight uploaded once; owns the device copy.
class DeviceLinear {
 public:
  DeviceLinear() = default;
  explicit DeviceLinear(const LinearWeight& w);
  const DeviceWeight& view() const { return view_; }
  size_t bytes() const { return data_.bytes() + scales_.bytes(); }

 private:
  DeviceBuffer data_, scales_;
  DeviceWeight view_;
};

// y[m, out] = x[m, in] · Wᵀ. Unscaled BF16 and F32 weights go through cuBLAS
// (bf16: activations rounded to bf16 first, f32 accumulation); F8_E4M3 with
// block scales and F16 through linear_tiled.
void linear(const float* x, int64_t m, int64_t ldx, const DeviceWeight& w, float* y, int64_t ldy,
            Stream s = nullptr);
// The own tiled kernel for any weight dtype: each 32×32 weight tile is
// converted (and block-scaled) into shared memory, f32 activations, f32 sums.
void linear_tiled(const float* x, int64_t m, int64_t ldx, const DeviceWeight& w, float* y, int64_t ldy,
                  Stream s = nullptr);

// One GEMM of a grouped product: rows [row_begin, row_begin + rows) of x times w.
struct GemmGroup {
  const DeviceWeight* w = nullptr;
  int64_t row_begin = 0, rows = 0;
};
// For each group, y[rows] = x[rows] · wᵀ (all groups share in and out sizes).
void grouped_linear(const float* x, int64_t ldx, const std::vector<GemmGroup>& groups, float* y, int64_t ldy,
                    Stream s = nullptr);

// ---- Expert routing glue ----

// xg[r] = x[src[r]] for r < rows (cols values each).
void gather_rows(const float* x, int64_t cols, const int32_t* src, int64_t rows, float* xg, Stream s = nullptr);
// out[t] = Σ_{r in token_rows[offsets[t]..offsets[t+1])} row_weight[r] · y[r], in that order.
void combine_rows(const float* y, int64_t cols, const int32_t* offsets, const int32_t* token_rows,
                  const float* row_weight, int64_t tokens, float* out, Stream s = nullptr);

// ---- Sampling (kernels/cpu/sampling.h) ----

// out[r] = index of the largest of row r's n logits (the lowest on ties).
void argmax(const float* logits, int64_t rows, int64_t n, int32_t* out, Stream s = nullptr);
// cpu::sampling_distribution for one row: probs [n] (zeros outside the kept set).
// Synchronous: it sorts on the device with a workspace of its own.
void sampling_distribution(const float* logits, int64_t n, float temperature, int64_t top_k, float top_p,
                           float* probs, Stream s = nullptr);

// ---- MLA absorbed decode over the paged latent cache (model/mla.cpp) ----

// The latent cache on the device with LatentKvCache's layout:
// [page][layer][slot][dim] bf16, dim = kv_lora_rank + qk_rope_head_dim.
struct LatentCacheView {
  const uint16_t* data = nullptr;
  int64_t layers = 0, page_tokens = 0, dim = 0;
};

struct MlaShape {
  int64_t heads = 0, nope = 0, rope = 0, v = 0, lora = 0;
  int64_t qk() const { return nope + rope; }
};
constexpr int64_t kMaxMlaLora = 512;

// q_lat[b, h, :] = q_nope[b, h, :] · W_kb[h] (kv_b's key rows of head h).
// q: [B, heads·qk] rows, q_lat: [B, heads, lora].
void mla_absorb_query(const float* q, int64_t B, const MlaShape& m, const DeviceWeight& kv_b, float* q_lat,
                      Stream s = nullptr);
// o_lat[b, h, :] = softmax_j(scale·(q_lat·lat_j + q_pe·pe_j)) · lat_j over the
// first lengths[b] positions of sequence b; page_table: [B, max_pages].
void mla_attend_latent(const float* q_lat, const float* q, int64_t B, const MlaShape& m,
                       const LatentCacheView& cache, int64_t layer, const int32_t* page_table, int64_t max_pages,
                       const int32_t* lengths, float scale, float* o_lat, Stream s = nullptr);
// attn[b, h, :] = W_vb[h] · o_lat[b, h, :]; attn: [B, heads·v].
void mla_absorb_output(const float* o_lat, int64_t B, const MlaShape& m, const DeviceWeight& kv_b, float* attn,
                       Stream s = nullptr);
// The three above: one new token per sequence, q already rotated, its latent
// already written to the cache. q_lat and o_lat: [B, heads, lora] workspaces.
void mla_absorbed_decode(const float* q, int64_t B, const MlaShape& m, const DeviceWeight& kv_b,
                         const LatentCacheView& cache, int64_t layer, const int32_t* page_table,
                         int64_t max_pages, const int32_t* lengths, float scale, float* q_lat, float* o_lat,
                         float* attn, Stream s = nullptr);

}  // namespace moemesh::cuda
