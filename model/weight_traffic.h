// Bytes of weights a forward pass must read per decoded token (batch 1), from
// the config: what decode speed is bounded by on a memory-bound machine.
#pragma once

#include <cstdint>

#include "core/model_config.h"

namespace moemesh {

struct WeightTraffic {
  double attention = 0;     // MLA projections, all layers
  double dense_ffn = 0;     // dense layers and shared experts
  double routed = 0;        // top_k routed experts per MoE layer
  double head = 0;          // LM head (+ one embedding row)
  double total() const { return attention + dense_ffn + routed + head; }
};

WeightTraffic decode_weight_traffic(const ModelConfig& c);

}  // namespace moemesh
