// config.json of DeepseekV3ForCausalLM (and the DeepSeek-V2 variants), validated.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace moemesh {

// Routed experts per token the engine supports (DeepSeek-V3 and Kimi-K2 use 8).
constexpr int64_t kMaxExpertsPerToken = 64;

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ScoringFunc { Sigmoid, Softmax };
enum class TopkMethod { Greedy, GroupLimitedGreedy, NoauxTc };

struct YarnScaling {
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct ModelConfig {
  std::string model_type = "deepseek_v3";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;       // dense layers
  int64_t moe_intermediate_size = 0;   // each routed / shared expert
  int64_t num_hidden_layers = 0;
  int64_t num_nextn_predict_layers = 0;  // MTP layers after the main stack
  int64_t first_k_dense_replace = 0;
  int64_t num_attention_heads = 0;
  int64_t n_routed_experts = 0;  // 0: every layer dense
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  TopkMethod topk_method = TopkMethod::NoauxTc;
  ScoringFunc scoring_func = ScoringFunc::Sigmoid;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = true;
  int64_t q_lora_rank = 0;  // 0: no q compression (q_proj)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  double rope_theta = 10000.0;
  std::optional<YarnScaling> yarn;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 4096;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  bool fp8_weights = false;  // quantization_config: fp8 e4m3, 128×128 blocks

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t kv_latent_dim() const { return kv_lora_rank + qk_rope_head_dim; }  // cached per token
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace;
  }
  int64_t mtp_layer() const { return num_hidden_layers; }  // index of the first MTP layer
  // Softmax scale with YaRN's mscale applied twice, as DeepSeek-V3 does.
  double softmax_scale() const;

  static ModelConfig from_json(const nlohmann::json& j);
  static ModelConfig load(const std::filesystem::path& dir_or_file);
  nlohmann::json to_json() const;
};

}  // namespace moemesh
