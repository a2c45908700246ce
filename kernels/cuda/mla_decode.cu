// Absorbed MLA decode over the paged latent cache: kv_b folded into the query
// and the output, attention computed over the cached latents themselves.
#include <stdexcept>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/weight_decode.cuh"

namespace moemesh::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kPerLane = kMaxMlaLora / 32;

// Block (b, h): q_lat[k] = Σ_o q_nope[o] · W[h·(nope+v) + o, k].
__global__ void absorb_query_kernel(const float* q, MlaShape m, DeviceWeight kv_b, float* q_lat) {
  const int64_t b = blockIdx.y, h = blockIdx.x;
  const float* qn = q + b * m.heads * (m.nope + m.rope) + h * (m.nope + m.rope);
  const int64_t row0 = h * (m.nope + m.v);
  float* out = q_lat + (b * m.heads + h) * m.lora;
  for (int64_t k = threadIdx.x; k < m.lora; k += blockDim.x) {
    float acc = 0.0f;
    for (int64_t o = 0; o < m.nope; ++o) acc += qn[o] * detail::weight_at(kv_b, row0 + o, k);
    out[k] = acc;
  }
}

// Block (b, h), one warp per output value: attn[i] = Σ_k o_lat[k] · W[h·(nope+v) + nope + i, k].
__global__ void absorb_output_kernel(const float* o_lat, MlaShape m, DeviceWeight kv_b, float* attn) {
  const int64_t b = blockIdx.y, h = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* ol = o_lat + (b * m.heads + h) * m.lora;
  const int64_t row0 = h * (m.nope + m.v) + m.nope;
  for (int64_t i = warp; i < m.v; i += kWarps) {
    float acc = 0.0f;
    for (int64_t k = lane; k < m.lora; k += 32) acc += ol[k] * detail::weight_at(kv_b, row0 + i, k);
    acc = detail::warp_sum(acc);
    if (lane == 0) attn[b * m.heads * m.v + h * m.v + i] = acc;
  }
}

// Block (b, h): each warp walks its share of positions with an online softmax
// (running max, sum and weighted latent sum); the warps are merged at the end.
__global__ void attend_kernel(const float* q_lat, const float* q, MlaShape m, LatentCacheView cache, int64_t layer,
                              const int32_t* page_table, int64_t max_pages, const int32_t* lengths, float scale,
                              float* o_lat) {
  __shared__ float ql[kMaxMlaLora];
  __shared__ float qp[kMaxMlaLora];
  __shared__ float warp_m[kWarps], warp_l[kWarps];
  __shared__ float warp_o[kWarps][kMaxMlaLora];
  const int64_t b = blockIdx.y, h = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t k = threadIdx.x; k < m.lora; k += blockDim.x) ql[k] = q_lat[(b * m.heads + h) * m.lora + k];
  for (int64_t k = threadIdx.x; k < m.rope; k += blockDim.x) qp[k] = q[b * m.heads * (m.nope + m.rope) + h * (m.nope + m.rope) + m.nope + k];
  __syncthreads();

  float run_m = -INFINITY, run_l = 0.0f;
  float o[kPerLane];
  for (int i = 0; i < kPerLane; ++i) o[i] = 0.0f;
  const int64_t L = lengths[b];
  const int32_t* pages = page_table + b * max_pages;
  for (int64_t j = warp; j < L; j += kWarps) {
    const int64_t page = pages[j / cache.page_tokens];
    const uint16_t* row = cache.data + ((page * cache.layers + layer) * cache.page_tokens + j % cache.page_tokens) * cache.dim;
    float lat[kPerLane];
    float dot = 0.0f;
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t k = lane + 32 * i;
      lat[i] = k < m.lora ? detail::bf16_to_f32(row[k]) : 0.0f;
      if (k < m.lora) dot += ql[k] * lat[i];
    }
    for (int64_t k = lane; k < m.rope; k += 32) dot += qp[k] * detail::bf16_to_f32(row[m.lora + k]);
    const float sc = detail::warp_sum(dot) * scale;
    const float new_m = fmaxf(run_m, sc);
    const float corr = expf(run_m - new_m), p = expf(sc - new_m);
    run_l = run_l * corr + p;
    for (int i = 0; i < kPerLane; ++i) o[i] = o[i] * corr + p * lat[i];
    run_m = new_m;
  }
  if (lane == 0) {
    warp_m[warp] = run_m;
    warp_l[warp] = run_l;
  }
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * i < m.lora) warp_o[warp][lane + 32 * i] = o[i];
  __syncthreads();

  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, warp_m[w]);
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += warp_l[w] > 0.0f ? warp_l[w] * expf(warp_m[w] - M) : 0.0f;
  float* out = o_lat + (b * m.heads + h) * m.lora;
  for (int64_t k = threadIdx.x; k < m.lora; k += blockDim.x) {
    float acc = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (warp_l[w] > 0.0f) acc += warp_o[w][k] * expf(warp_m[w] - M);
    out[k] = acc / total;
  }
}

void check_shape(const MlaShape& m) {
  if (m.lora <= 0 || m.lora > kMaxMlaLora || m.rope < 0 || m.rope > kMaxMlaLora || m.heads <= 0)
    throw std::invalid_argument("cuda MLA: kv_lora_rank and qk_rope_head_dim must be within 1.." +
                                std::to_string(kMaxMlaLora));
}

}  // namespace

void mla_absorb_query(const float* q, int64_t B, const MlaShape& m, const DeviceWeight& kv_b, float* q_lat,
                      Stream s) {
  check_shape(m);
  if (B <= 0) return;
  absorb_query_kernel<<<dim3(static_cast<unsigned>(m.heads), static_cast<unsigned>(B)), 256, 0, detail::stream(s)>>>(
      q, m, kv_b, q_lat);
  MOEMESH_CUDA_LAUNCHED();
}

void mla_attend_latent(const float* q_lat, const float* q, int64_t B, const MlaShape& m, const LatentCacheView& cache,
                       int64_t layer, const int32_t* page_table, int64_t max_pages, const int32_t* lengths,
                       float scale, float* o_lat, Stream s) {
  check_shape(m);
  if (cache.dim != m.lora + m.rope) throw std::invalid_argument("cuda MLA: cache rows must be lora + rope wide");
  if (B <= 0) return;
  attend_kernel<<<dim3(static_cast<unsigned>(m.heads), static_cast<unsigned>(B)), kWarps * 32, 0, detail::stream(s)>>>(
      q_lat, q, m, cache, layer, page_table, max_pages, lengths, scale, o_lat);
  MOEMESH_CUDA_LAUNCHED();
}

void mla_absorb_output(const float* o_lat, int64_t B, const MlaShape& m, const DeviceWeight& kv_b, float* attn,
                       Stream s) {
  check_shape(m);
  if (B <= 0) return;
  absorb_output_kernel<<<dim3(static_cast<unsigned>(m.heads), static_cast<unsigned>(B)), kWarps * 32, 0,
                         detail::stream(s)>>>(o_lat, m, kv_b, attn);
  MOEMESH_CUDA_LAUNCHED();
}

void mla_absorbed_decode(const float* q, int64_t B, const MlaShape& m, const DeviceWeight& kv_b,
                         const LatentCacheView& cache, int64_t layer, const int32_t* page_table, int64_t max_pages,
                         const int32_t* lengths, float scale, float* q_lat, float* o_lat, float* attn, Stream s) {
  mla_absorb_query(q, B, m, kv_b, q_lat, s);
  mla_attend_latent(q_lat, q, B, m, cache, layer, page_table, max_pages, lengths, scale, o_lat, s);
  mla_absorb_output(o_lat, B, m, kv_b, attn, s);
}

}  // namespace moemesh::cuda
