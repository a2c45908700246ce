#include "services/router/remote_moe.h"

#include <cstring>

#include "actors/wire_message.h"

namespace moemesh {

RemoteMoe::RemoteMoe(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<int64_t>& layers,
                     std::vector<ExpertHostSpec> hosts, WireActivations wire, std::chrono::milliseconds deadline)
    : cfg_(cfg), hosts_(std::move(hosts)), owner_(cfg.n_routed_experts, -1), wire_(wire), deadline_(deadline), ctx_(1) {
  for (int64_t l : layers) gates_[l] = std::make_unique<MoeGate>(cfg, ckpt, l);
  for (size_t h = 0; h < hosts_.size(); ++h) {
    for (int32_t e : hosts_[h].experts) {
      if (e < 0 || e >= cfg.n_routed_experts) throw std::invalid_argument("expert host " + hosts_[h].endpoint + ": expert " + std::to_string(e) + " out of range");
      if (owner_[e] < 0) owner_[e] = static_cast<int>(h);
    }
    socks_.emplace_back(ctx_, zmq::socket_type::dealer);
    socks_.back().set(zmq::sockopt::linger, 0);
    socks_.back().connect(hosts_[h].endpoint);
  }
  for (int32_t e = 0; e < cfg.n_routed_experts; ++e)
    if (owner_[e] < 0) throw std::invalid_argument("expert " + std::to_string(e) + " is held by no expert host");
}

RemoteMoe::~RemoteMoe() = default;

void RemoteMoe::routed(int64_t layer, const float* x, int64_t tokens, float* out) {
  auto g = gates_.find(layer);
  if (g == gates_.end()) throw std::out_of_range("no MoE layer " + std::to_string(layer) + " here");
  const int64_t H = cfg_.hidden_size;
  const Routing r = g->second->route(x, tokens);
  const int64_t k = r.top_k;
  std::fill(out, out + tokens * H, 0.0f);

  // Per host: the rows with at least one of its experts, and their routing
  // (other hosts' experts marked -1).
  struct Part { std::vector<int64_t> rows; std::vector<int32_t> experts; std::vector<float> weights; uint64_t request = 0; };
  std::vector<Part> parts(hosts_.size());
  for (int64_t t = 0; t < tokens; ++t)
    for (size_t h = 0; h < hosts_.size(); ++h) {
      bool any = false;
      for (int64_t j = 0; j < k; ++j) any |= owner_[r.experts[t * k + j]] == static_cast<int>(h);
      if (!any) continue;
      Part& p = parts[h];
      p.rows.push_back(t);
      for (int64_t j = 0; j < k; ++j) {
        const bool mine = owner_[r.experts[t * k + j]] == static_cast<int>(h);
        p.experts.push_back(mine ? r.experts[t * k + j] : -1);
        p.weights.push_back(mine ? r.weights[t * k + j] : 0.0f);
      }
    }
  size_t pending = 0;
  for (size_t h = 0; h < hosts_.size(); ++h) {
    Part& p = parts[h];
    if (p.rows.empty()) continue;
    const int64_t rows = static_cast<int64_t>(p.rows.size());
    std::vector<float> xs(rows * H);
    for (int64_t i = 0; i < rows; ++i) std::memcpy(xs.data() + i * H, x + p.rows[i] * H, H * 4);
    wire::Message m;
    m.header.type = wire::MsgType::Dispatch;
    m.header.request_id = p.request = next_request_++;
    m.header.layer = static_cast<int32_t>(layer);
    m.header.aux = static_cast<uint32_t>(k);
    m.header.rank = 2;
    m.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(H), 0, 0};
    if (wire_ == WireActivations::F32) {
      m.header.dtype = DType::F32;
      m.add_payload(xs);
    } else if (wire_ == WireActivations::BF16) {
      m.header.dtype = DType::BF16;
      std::vector<uint16_t> b(xs.size());
      for (size_t i = 0; i < xs.size(); ++i) b[i] = f32_to_bf16(xs[i]);
      m.add_payload(b);
    } else {
      m.header.dtype = DType::F8_E4M3;
      m.header.flags = wire::kFlagFp8Scaled;
      const wire::Fp8Rows q = wire::quantize_rows_fp8(xs.data(), rows, H);
      m.add_payload(q.values);
      m.add_payload(q.scales);
    }
    m.add_payload(p.experts);
    m.add_payload(p.weights);
    for (const auto& pl : m.payloads) bytes_sent_ += pl.size();
    wire::send(socks_[h], m);
    ++pending;
  }
  // Gather: sum each host's partial sums, in host order.
  std::vector<std::vector<float>> partial(hosts_.size());
  const auto until = std::chrono::steady_clock::now() + deadline_;
  while (pending > 0) {
    std::vector<zmq::pollitem_t> items;
    std::vector<size_t> which;
    for (size_t h = 0; h < hosts_.size(); ++h)
      if (!parts[h].rows.empty() && partial[h].empty()) {
        items.push_back({static_cast<void*>(socks_[h]), 0, ZMQ_POLLIN, 0});
        which.push_back(h);
      }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || zmq::poll(items, left) == 0)
      throw MoeDispatchError("layer " + std::to_string(layer) + ": expert host(s) missed the " +
                             std::to_string(deadline_.count()) + " ms deadline");
    for (size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      const size_t h = which[i];
      auto reply = wire::receive(socks_[h]);
      if (!reply) continue;
      if (reply->header.request_id != parts[h].request) continue;  // a late answer to an earlier request
      if (reply->header.type == wire::MsgType::Error)
        throw MoeDispatchError("expert host " + hosts_[h].endpoint + ": " +
                               std::string(reply->payload_as<char>(0), reply->payload_size(0)));
      const int64_t rows = static_cast<int64_t>(parts[h].rows.size());
      // Only f32 and bf16 are read below: any other dtype would be read past its payload.
      if (reply->header.type != wire::MsgType::Combine || reply->header.rank != 2 || reply->header.shape[0] != rows ||
          reply->header.shape[1] != H || (reply->header.dtype != DType::F32 && reply->header.dtype != DType::BF16))
        throw MoeDispatchError("expert host " + hosts_[h].endpoint + ": malformed Combine");
      partial[h].resize(rows * H);
      if (reply->header.dtype == DType::F32) {
        std::memcpy(partial[h].data(), reply->payload_as<float>(0), rows * H * 4);
      } else {
        const auto* b = reply->payload_as<uint16_t>(0);
        for (int64_t j = 0; j < rows * H; ++j) partial[h][j] = bf16_to_f32(b[j]);
      }
      --pending;
    }
  }
  for (size_t h = 0; h < hosts_.size(); ++h)
    for (size_t i = 0; i < parts[h].rows.size(); ++i) {
      float* o = out + parts[h].rows[i] * H;
      const float* p = partial[h].data() + i * H;
      for (int64_t d = 0; d < H; ++d) o[d] += p[d];
    }
}

}  // namespace moemesh
