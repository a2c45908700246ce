// config.json parsing: presets round-trip, bad configs are refused naming the key.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/model_config.h"
#include "model/checkpoint_maker.h"

using namespace moemesh;
using nlohmann::json;

namespace {
json v3_json() { return preset_config("tiny").to_json(); }

std::string refusal(const json& j) {
  try {
    ModelConfig::from_json(j);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ModelConfig, PresetsRoundTrip) {
  for (const auto& name : model_presets()) {
    const ModelConfig c = preset_config(name);
    const ModelConfig d = ModelConfig::from_json(c.to_json());
    EXPECT_EQ(c.to_json(), d.to_json()) << name;
  }
}

TEST(ModelConfig, RealDeepSeekV3Config) {
  // The shape of DeepSeek-V3's published config.json.
  const json j = json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config"},
    "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1,
    "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02,
    "intermediate_size": 18432, "kv_lora_rank": 512, "max_position_embeddings": 163840,
    "model_type": "deepseek_v3", "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8,
    "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "pretraining_tp": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "seq_aux": true,
    "tie_word_embeddings": false, "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16",
    "transformers_version": "4.33.1", "use_cache": true, "v_head_dim": 128, "vocab_size": 129280})");
  const ModelConfig c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.fp8_weights);
  EXPECT_EQ(c.kv_latent_dim(), 576);
  EXPECT_EQ(c.mtp_layer(), 61);
  EXPECT_TRUE(c.is_moe_layer(3));
  EXPECT_FALSE(c.is_moe_layer(2));
  // 192^-0.5 · (0.1·ln 40 + 1)²
  const double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-12);
}

TEST(ModelConfig, QLoraNullAndV2Defaults) {
  json j = v3_json();
  j["q_lora_rank"] = nullptr;
  j["model_type"] = "deepseek_v2";
  j.erase("topk_method");
  j.erase("scoring_func");
  j.erase("norm_topk_prob");
  j.erase("num_nextn_predict_layers");
  const ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.topk_method, TopkMethod::Greedy);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Softmax);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
}

TEST(ModelConfig, RefusesUnknownAndContradictoryKeys) {
  struct Case { std::string key; json value; std::string expect; };
  const std::vector<Case> cases = {
      {"frobnicate", 1, "'frobnicate'"},
      {"hidden_size", -4, "'hidden_size'"},
      {"hidden_size", "big", "'hidden_size'"},
      {"num_experts_per_tok", 17, "'num_experts_per_tok'"},
      {"n_group", 3, "'n_group'"},
      {"topk_group", 5, "'topk_group'"},
      {"topk_method", "best", "'topk_method'"},
      {"scoring_func", "tanh", "'scoring_func'"},
      {"first_k_dense_replace", 9, "'first_k_dense_replace'"},
      {"qk_rope_head_dim", 15, "'qk_rope_head_dim'"},
      {"num_key_value_heads", 2, "'num_key_value_heads'"},
      {"hidden_act", "gelu", "'hidden_act'"},
      {"attention_bias", true, "'attention_bias'"},
      {"architectures", json::array({"LlamaForCausalLM"}), "'architectures'"},
      {"rope_scaling", json{{"type", "linear"}, {"factor", 2}}, "'rope_scaling.type'"},
      {"quantization_config", json{{"quant_method", "awq"}}, "'quantization_config.quant_method'"},
      {"quantization_config", json{{"quant_method", "fp8"}, {"weight_block_size", {64, 64}}},
       "'quantization_config.weight_block_size'"},
      {"eos_token_id", 5000, "'eos_token_id'"},
      {"rms_norm_eps", 0, "'rms_norm_eps'"},
  };
  for (const auto& c : cases) {
    json j = v3_json();
    j[c.key] = c.value;
    const std::string msg = refusal(j);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.key << " -> '" << msg << "'";
  }
  json j = v3_json();
  j.erase("kv_lora_rank");
  EXPECT_NE(refusal(j).find("'kv_lora_rank' is missing"), std::string::npos);
  EXPECT_NE(refusal(json::array()).find("object"), std::string::npos);
}

TEST(ModelConfig, LoadReportsBadFiles) {
  EXPECT_THROW(ModelConfig::load("/nonexistent/dir"), ConfigError);
}
