// Absorbed MLA over the paged latent cache on the device against the CPU's
// absorbed attention (model/mla.cpp), on a LatentKvCache copied as is: decode
// rows of several sequences and the causal rows of a prefill chunk.
#include "tests/gpu/gpu_test.h"

#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_t.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/cuda_backend.h"
#include "model/kv_cache.h"

using namespace moemesh;
using moemesh::gpu_test::GpuTest;
using moemesh::gpu_test::make_weight;
using moemesh::gpu_test::random_floats;

class GpuMla : public GpuTest {};

TEST_F(GpuMla, AbsorbedDecodeAndPrefillRowsMatchCpu) {
  const cuda::MlaShape m{.heads = 4, .nope = 32, .rope = 16, .v = 24, .lora = 96};
  const int64_t layers = 3, layer = 1, page_tokens = 16, dim = m.lora + m.rope;
  const float scale = 1.0f / std::sqrt(static_cast<float>(m.qk()));
  LatentKvCache cache(layers, dim, page_tokens, 40);
  // Three sequences, interleaved so their pages are not contiguous.
  const std::vector<int64_t> lengths = {1, 37, 130};
  const int64_t B = static_cast<int64_t>(lengths.size());
  for (int64_t step = 1; step <= 130; ++step)
    for (int64_t b = 0; b < B; ++b) {
      if (step <= lengths[b]) { ASSERT_TRUE(cache.reserve(static_cast<SeqId>(b), step)); }
    }
  auto lat = random_floats(static_cast<size_t>(B * 130 * dim), 3);
  for (int64_t b = 0; b < B; ++b) {
    cache.set_length(static_cast<SeqId>(b), lengths[b]);
    for (int64_t j = 0; j < lengths[b]; ++j)
      for (int64_t l = 0; l < layers; ++l) {
        uint16_t* row = cache.row_bf16(static_cast<SeqId>(b), l, j);
        for (int64_t d = 0; d < dim; ++d) row[d] = f32_to_bf16(lat[(b * 130 + j) * dim + d] * (l == layer ? 1.0f : 9.0f));
      }
  }
  auto kv_b = make_weight(DType::F8_E4M3, m.heads * (m.nope + m.v), m.lora, 5);
  // Query rows: the three sequences' newest tokens (decode), then a prefill
  // chunk of sequence 2 (positions 125..127), each row attending to its prefix.
  struct Row { SeqId seq; int64_t len; };
  const std::vector<Row> rows = {{0, 1}, {1, 37}, {2, 130}, {2, 126}, {2, 127}, {2, 128}};
  const int64_t R = static_cast<int64_t>(rows.size());
  auto q = random_floats(static_cast<size_t>(R * m.heads * m.qk()), 6);

  // CPU: the steps of MlaLayer::attend_absorbed, one row at a time.
  std::vector<float> want(R * m.heads * m.v);
  for (int64_t b = 0; b < R; ++b)
    for (int64_t h = 0; h < m.heads; ++h) {
      const int64_t kb = h * (m.nope + m.v), L = rows[b].len;
      const float* qh = q.data() + (b * m.heads + h) * m.qk();
      std::vector<float> ql(m.lora), ol(m.lora, 0.0f), scores(L), row(dim);
      cpu::linear_t(qh, 1, m.qk(), kv_b.lw, kb, kb + m.nope, ql.data(), m.lora);
      for (int64_t j = 0; j < L; ++j) {
        const uint16_t* r = cache.row_bf16(rows[b].seq, layer, j);
        for (int64_t d = 0; d < dim; ++d) row[d] = bf16_to_f32(r[d]);
        scores[j] = (cpu::dot(ql.data(), row.data(), m.lora) + cpu::dot(qh + m.nope, row.data() + m.lora, m.rope)) * scale;
      }
      cpu::softmax_inplace(scores.data(), L);
      for (int64_t j = 0; j < L; ++j) {
        const uint16_t* r = cache.row_bf16(rows[b].seq, layer, j);
        for (int64_t d = 0; d < m.lora; ++d) ol[d] += scores[j] * bf16_to_f32(r[d]);
      }
      cpu::linear_rows(ol.data(), 1, m.lora, kv_b.lw, kb + m.nope, kb + m.nope + m.v, want.data() + (b * m.heads + h) * m.v,
                       m.v);
    }

  // GPU: the cache storage and page tables copied as they are.
  const int64_t max_pages = cache.pages_for(130);
  std::vector<int32_t> table(R * max_pages, 0), lens;
  for (int64_t b = 0; b < R; ++b) {
    const auto& pages = cache.pages(rows[b].seq);
    std::copy(pages.begin(), pages.end(), table.begin() + b * max_pages);
    lens.push_back(static_cast<int32_t>(rows[b].len));
  }
  cuda::DeviceBuffer dcache(cache.storage_bytes());
  dcache.upload(cache.storage(), cache.storage_bytes());
  auto dtable = cuda::DeviceBuffer::from(table), dlens = cuda::DeviceBuffer::from(lens), dq = cuda::DeviceBuffer::from(q);
  cuda::DeviceLinear dkv(kv_b.lw);
  cuda::DeviceBuffer q_lat(R * m.heads * m.lora * 4), o_lat(R * m.heads * m.lora * 4), attn(want.size() * 4);
  const cuda::LatentCacheView view{dcache.as<uint16_t>(), layers, page_tokens, dim};
  cuda::mla_absorbed_decode(dq.as<float>(), R, m, dkv.view(), view, layer, dtable.as<int32_t>(), max_pages,
                            dlens.as<int32_t>(), scale, q_lat.as<float>(), o_lat.as<float>(), attn.as<float>());
  gpu_test::expect_close(attn.to_vector<float>(want.size()), want, 1e-4f, 1e-3f, "mla decode");
}
