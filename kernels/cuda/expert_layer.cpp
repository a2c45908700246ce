#include "kernels/cuda/expert_layer.h"

#include <stdexcept>
#include <string>

namespace moemesh::cuda {

ExpertLayer::ExpertLayer(int64_t hidden, int64_t inter, const std::vector<ExpertWeights>& experts)
    : hidden_(hidden), inter_(inter) {
  for (const ExpertWeights& e : experts) {
    if (e.gate.out() != inter || e.gate.in() != hidden || e.up.out() != inter || e.up.in() != hidden ||
        e.down.out() != hidden || e.down.in() != inter)
      throw std::invalid_argument("cuda::ExpertLayer: expert " + std::to_string(e.id) + " has the wrong shape");
    experts_.emplace(e.id, Expert{DeviceLinear(e.gate), DeviceLinear(e.up), DeviceLinear(e.down)});
  }
}

size_t ExpertLayer::device_bytes() const {
  size_t b = 0;
  for (const auto& [id, e] : experts_) b += e.gate.bytes() + e.up.bytes() + e.down.bytes();
  return b;
}

void ExpertLayer::forward(const float* x, int64_t tokens, const int32_t* experts, const float* weights,
                          int64_t top_k, float* out) {
  // Rows in ascending expert order; each token's rows listed in that order too.
  std::map<int32_t, std::vector<std::pair<int32_t, float>>> by_expert;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < top_k; ++k) {
      const int32_t e = experts[t * top_k + k];
      if (has(e)) by_expert[e].emplace_back(static_cast<int32_t>(t), weights[t * top_k + k]);
    }
  std::vector<int32_t> src;
  std::vector<float> row_weight;
  std::vector<std::vector<int32_t>> rows_of(tokens);
  std::vector<GemmGroup> gate, up, down;
  for (const auto& [e, list] : by_expert) {
    const int64_t begin = static_cast<int64_t>(src.size()), n = static_cast<int64_t>(list.size());
    const Expert& ex = experts_.at(e);
    gate.push_back({&ex.gate.view(), begin, n});
    up.push_back({&ex.up.view(), begin, n});
    down.push_back({&ex.down.view(), begin, n});
    for (const auto& [t, w] : list) {
      rows_of[t].push_back(static_cast<int32_t>(src.size()));
      src.push_back(t);
      row_weight.push_back(w);
    }
  }
  const int64_t R = static_cast<int64_t>(src.size());
  if (R == 0) return;
  // One index upload: src [R], offsets [tokens + 1], token_rows [R].
  std::vector<int32_t> index(src);
  index.push_back(0);
  for (int64_t t = 0; t < tokens; ++t) index.push_back(index.back() + static_cast<int32_t>(rows_of[t].size()));
  for (int64_t t = 0; t < tokens; ++t) index.insert(index.end(), rows_of[t].begin(), rows_of[t].end());

  const size_t xbytes = static_cast<size_t>(tokens * hidden_) * 4;
  x_.reserve(xbytes);
  out_.reserve(xbytes);
  xg_.reserve(static_cast<size_t>(R * hidden_) * 4);
  y_.reserve(static_cast<size_t>(R * hidden_) * 4);
  g_.reserve(static_cast<size_t>(R * inter_) * 4);
  u_.reserve(static_cast<size_t>(R * inter_) * 4);
  index_.reserve(index.size() * 4);
  row_weight_.reserve(row_weight.size() * 4);
  x_.upload(x, xbytes);
  index_.upload(index.data(), index.size() * 4);
  row_weight_.upload(row_weight.data(), row_weight.size() * 4);
  const int32_t* d_src = index_.as<int32_t>();
  const int32_t* d_offsets = d_src + R;
  const int32_t* d_token_rows = d_offsets + tokens + 1;

  gather_rows(x_.as<float>(), hidden_, d_src, R, xg_.as<float>());
  grouped_linear(xg_.as<float>(), hidden_, gate, g_.as<float>(), inter_);
  grouped_linear(xg_.as<float>(), hidden_, up, u_.as<float>(), inter_);
  silu_mul(g_.as<float>(), u_.as<float>(), R * inter_, g_.as<float>());
  grouped_linear(g_.as<float>(), inter_, down, y_.as<float>(), hidden_);
  combine_rows(y_.as<float>(), hidden_, d_offsets, d_token_rows, row_weight_.as<float>(), tokens, out_.as<float>());

  std::vector<float> sum(static_cast<size_t>(tokens * hidden_));
  out_.download(sum.data(), xbytes);  // synchronous: waits for the kernels
  for (size_t i = 0; i < sum.size(); ++i) out[i] += sum[i];
}

}  // namespace moemesh::cuda
