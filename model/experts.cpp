#include "model/experts.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "model/weight_loader.h"

namespace moemesh {
namespace {
// Output rows per work item of the grouped products: a multiple of every kernel's
// panel, large enough to amortise a claim, small enough to balance two threads.
constexpr int64_t kRowsPerItem = 64;
}  // namespace

ExpertSet::ExpertSet(const ModelConfig& cfg, const Checkpoint& ckpt, int64_t layer, const std::vector<int32_t>& experts)
    : hidden_(cfg.hidden_size), inter_(cfg.moe_intermediate_size), local_(cfg.n_routed_experts, -1) {
  std::vector<int32_t> sorted = experts;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (int32_t e : sorted) {
    if (e < 0 || e >= cfg.n_routed_experts)
      throw std::out_of_range("expert " + std::to_string(e) + " outside 0.." + std::to_string(cfg.n_routed_experts - 1));
    const std::string p = layer_prefix(layer) + "mlp.experts." + std::to_string(e);
    local_[e] = static_cast<int32_t>(ids_.size());
    ids_.push_back(e);
    mlps_.emplace_back(ckpt, p, cfg.hidden_size, cfg.moe_intermediate_size);
  }
}

std::vector<int32_t> ExpertSet::all(const ModelConfig& cfg) {
  std::vector<int32_t> v(cfg.n_routed_experts);
  for (int32_t i = 0; i < cfg.n_routed_experts; ++i) v[i] = i;
  return v;
}

size_t ExpertSet::weight_bytes() const {
  size_t b = 0;
  for (const auto& m : mlps_) b += m.weight_bytes();
  return b;
}

void ExpertSet::forward(const float* x, const Routing& r, float* out) const {
  thread_local Workspace ws;
  ForwardContext ctx;
  ctx.ws = &ws;
  forward(x, r, out, ctx);
}

void ExpertSet::forward(const float* x, const Routing& r, float* out, const ForwardContext& ctx) const {
  Workspace& ws = *ctx.ws;
  Workspace::Frame frame(ws);
  const int64_t E = static_cast<int64_t>(ids_.size()), H = hidden_, I = inter_;
  // Rows grouped by expert (a counting sort), each remembering its token and weight.
  int64_t* offsets = ws.get<int64_t>(E + 1);
  std::fill(offsets, offsets + E + 1, 0);
  for (int64_t i = 0; i < r.tokens * r.top_k; ++i)
    if (has(r.experts[i])) ++offsets[local_[r.experts[i]] + 1];
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
  const int64_t R = offsets[E];
  if (R == 0) return;
  int64_t* cursor = ws.get<int64_t>(E);
  std::copy(offsets, offsets + E, cursor);
  int64_t* row_token = ws.get<int64_t>(R);
  int64_t* slot_row = ws.get<int64_t>(r.tokens * r.top_k);  // each routing slot's row, -1: not held here
  for (int64_t t = 0; t < r.tokens; ++t)
    for (int64_t k = 0; k < r.top_k; ++k) {
      const int32_t e = r.experts[t * r.top_k + k];
      if (!has(e)) {
        slot_row[t * r.top_k + k] = -1;
        continue;
      }
      const int64_t row = cursor[local_[e]]++;
      row_token[row] = t;
      slot_row[t * r.top_k + k] = row;
    }
  int32_t* active = ws.get<int32_t>(E);
  int64_t n_active = 0;
  for (int64_t e = 0; e < E; ++e)
    if (offsets[e + 1] > offsets[e]) active[n_active++] = static_cast<int32_t>(e);

  float* xg = ws.floats(R * H);
  cpu::parallel_for(R, 16, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) std::copy_n(x + row_token[row] * H, H, xg + row * H);
  });
  float* g = ws.floats(R * I);
  float* u = ws.floats(R * I);
  float* y = ws.floats(R * H);

  // Gate and up of every active expert: one pass over the pool.
  const int64_t items_i = (I + kRowsPerItem - 1) / kRowsPerItem;
  cpu::parallel_for(n_active * 2 * items_i, 1, [&](int64_t b, int64_t end) {
    for (int64_t it = b; it < end; ++it) {
      const int32_t e = active[it / (2 * items_i)];
      const int64_t rem = it % (2 * items_i), o0 = (rem % items_i) * kRowsPerItem, o1 = std::min(I, o0 + kRowsPerItem);
      const bool up = rem >= items_i;
      const int64_t off = offsets[e], cnt = offsets[e + 1] - off;
      cpu::linear_rows_serial(xg + off * H, cnt, H, up ? mlps_[e].up() : mlps_[e].gate(), o0, o1,
                              (up ? u : g) + off * I + o0, I, ctx.precision);
    }
  });
  cpu::parallel_for(R, 16, [&](int64_t b, int64_t e) { cpu::silu_mul(g + b * I, u + b * I, (e - b) * I, g + b * I); });
  // Down of every active expert: one more pass.
  const int64_t items_h = (H + kRowsPerItem - 1) / kRowsPerItem;
  cpu::parallel_for(n_active * items_h, 1, [&](int64_t b, int64_t end) {
    for (int64_t it = b; it < end; ++it) {
      const int32_t e = active[it / items_h];
      const int64_t o0 = (it % items_h) * kRowsPerItem, o1 = std::min(H, o0 + kRowsPerItem);
      const int64_t off = offsets[e], cnt = offsets[e + 1] - off;
      cpu::linear_rows_serial(g + off * I, cnt, I, mlps_[e].down(), o0, o1, y + off * H + o0, H, ctx.precision);
    }
  });
  // Each token's experts added in ascending expert order, whatever ran where.
  cpu::parallel_for(r.tokens, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int64_t order[kMaxExpertsPerToken];
      const int64_t k = std::min<int64_t>(r.top_k, kMaxExpertsPerToken);
      for (int64_t j = 0; j < k; ++j) order[j] = j;
      const int32_t* ex = r.experts.data() + t * r.top_k;
      std::sort(order, order + k, [&](int64_t a, int64_t c) { return ex[a] < ex[c]; });
      for (int64_t j = 0; j < k; ++j) {
        const int64_t row = slot_row[t * r.top_k + order[j]];
        if (row >= 0) cpu::axpy(r.weights[t * r.top_k + order[j]], y + row * H, out + t * H, H);
      }
    }
  });
}

}  // namespace moemesh
