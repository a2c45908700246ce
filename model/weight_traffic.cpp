#include "model/weight_traffic.h"

namespace moemesh {

WeightTraffic decode_weight_traffic(const ModelConfig& c) {
  // fp8 weights: one byte plus one f32 scale per 128×128 block.
  const double lin = c.fp8_weights ? 1.0 + 4.0 / (128.0 * 128.0) : 2.0;
  const double H = static_cast<double>(c.hidden_size), nh = static_cast<double>(c.num_attention_heads);
  double attn = 0;
  if (c.q_lora_rank > 0) attn += c.q_lora_rank * H + nh * c.qk_head_dim() * c.q_lora_rank;
  else attn += nh * c.qk_head_dim() * H;
  attn += (c.kv_lora_rank + c.qk_rope_head_dim) * H + nh * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank;
  attn += H * nh * c.v_head_dim;
  WeightTraffic t;
  const double mlp = 3.0 * H * lin;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    t.attention += attn * lin;
    if (c.is_moe_layer(l)) {
      t.dense_ffn += mlp * c.moe_intermediate_size * c.n_shared_experts + 2.0 * c.n_routed_experts * H;  // + gate
      t.routed += mlp * c.moe_intermediate_size * c.num_experts_per_tok;
    } else {
      t.dense_ffn += mlp * c.intermediate_size;
    }
  }
  t.head = 2.0 * c.vocab_size * H + 2.0 * H;
  return t;
}

}  // namespace moemesh
