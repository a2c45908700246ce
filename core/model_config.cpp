#include "core/model_config.h"

#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace moemesh {
namespace {

using nlohmann::json;

// Keys that describe training or other frameworks and do not change inference.
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype",
    "use_cache", "initializer_range", "pretraining_tp", "attention_dropout", "aux_loss_alpha",
    "seq_aux", "ep_size", "num_key_value_heads", "hidden_act", "moe_layer_freq",
    "attention_bias", "tie_word_embeddings", "rope_interleave", "pad_token_id",
    "output_router_logits", "router_aux_loss_coef", "head_dim", "use_mla", "kv_head_dim",
    "model_type", "quantization_config", "rope_scaling", "bos_token_id", "eos_token_id",
    "rope_parameters"};

const std::set<std::string> kModelKeys = {
    "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
    "num_hidden_layers", "num_nextn_predict_layers", "first_k_dense_replace",
    "num_attention_heads", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
    "n_group", "topk_group", "topk_method", "scoring_func", "routed_scaling_factor",
    "norm_topk_prob", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
    "v_head_dim", "rope_theta", "rms_norm_eps", "max_position_embeddings"};

[[noreturn]] void fail(const std::string& key, const std::string& why) {
  throw ConfigError("config.json: '" + key + "' " + why);
}

int64_t get_int(const json& j, const std::string& key, std::optional<int64_t> dflt = {},
                int64_t min = 1) {
  if (!j.contains(key) || j[key].is_null()) {
    if (dflt) return *dflt;
    fail(key, "is missing");
  }
  const json& v = j[key];
  if (!v.is_number_integer()) fail(key, "must be an integer, found " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < min) fail(key, "must be >= " + std::to_string(min) + ", found " + std::to_string(x));
  if (x > (int64_t{1} << 40)) fail(key, "is implausibly large: " + std::to_string(x));
  return x;
}

double get_num(const json& j, const std::string& key, std::optional<double> dflt = {}) {
  if (!j.contains(key) || j[key].is_null()) {
    if (dflt) return *dflt;
    fail(key, "is missing");
  }
  if (!j[key].is_number()) fail(key, "must be a number, found " + j[key].dump());
  const double x = j[key].get<double>();
  if (!std::isfinite(x)) fail(key, "must be finite");
  return x;
}

std::string get_str(const json& j, const std::string& key, const std::string& dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_string()) fail(key, "must be a string, found " + j[key].dump());
  return j[key].get<std::string>();
}

void parse_rope_scaling(const json& j, ModelConfig& c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  const json& r = j["rope_scaling"];
  if (!r.is_object()) fail("rope_scaling", "must be an object or null");
  std::string type = r.contains("type") ? r["type"].get<std::string>()
                                        : get_str(r, "rope_type", "");
  if (type != "yarn") fail("rope_scaling.type", "'" + type + "' is not supported (only yarn)");
  YarnScaling y;
  y.factor = get_num(r, "factor");
  if (y.factor < 1.0) fail("rope_scaling.factor", "must be >= 1");
  y.original_max_position_embeddings =
      get_int(r, "original_max_position_embeddings", int64_t{4096});
  y.beta_fast = get_num(r, "beta_fast", 32.0);
  y.beta_slow = get_num(r, "beta_slow", 1.0);
  y.mscale = get_num(r, "mscale", 1.0);
  y.mscale_all_dim = get_num(r, "mscale_all_dim", 0.0);
  if (y.beta_fast <= 0 || y.beta_slow <= 0) fail("rope_scaling.beta_fast", "betas must be > 0");
  c.yarn = y;
}

void parse_quantization(const json& j, ModelConfig& c) {
  if (!j.contains("quantization_config") || j["quantization_config"].is_null()) return;
  const json& q = j["quantization_config"];
  if (!q.is_object()) fail("quantization_config", "must be an object");
  const std::string method = get_str(q, "quant_method", "");
  if (method != "fp8") fail("quantization_config.quant_method", "'" + method + "' is not supported (only fp8)");
  const std::string fmt = get_str(q, "fmt", "e4m3");
  if (fmt != "e4m3") fail("quantization_config.fmt", "'" + fmt + "' is not supported (only e4m3)");
  if (q.contains("weight_block_size")) {
    const json& b = q["weight_block_size"];
    if (b != json::array({128, 128}))
      fail("quantization_config.weight_block_size", "must be [128, 128], found " + b.dump());
  }
  if (q.contains("activation_scheme") && q["activation_scheme"] != "dynamic")
    fail("quantization_config.activation_scheme", "must be \"dynamic\"");
  c.fp8_weights = true;
}

}  // namespace

double ModelConfig::softmax_scale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (yarn && yarn->mscale_all_dim > 0 && yarn->factor > 1.0) {
    const double m = 0.1 * yarn->mscale_all_dim * std::log(yarn->factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

ModelConfig ModelConfig::from_json(const json& j) {
  if (!j.is_object()) throw ConfigError("config.json: must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!kIgnoredKeys.count(it.key()) && !kModelKeys.count(it.key()))
      fail(it.key(), "is not a known DeepSeek-V3 config key");
  }
  ModelConfig c;
  if (j.contains("architectures")) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string()) fail("architectures", "must be a list of names");
    const std::string arch = a[0].get<std::string>();
    if (arch != "DeepseekV3ForCausalLM" && arch != "DeepseekV2ForCausalLM")
      fail("architectures", "'" + arch + "' is not supported (DeepseekV3ForCausalLM, DeepseekV2ForCausalLM)");
  }
  c.model_type = get_str(j, "model_type", "deepseek_v3");
  if (c.model_type != "deepseek_v3" && c.model_type != "deepseek_v2" && c.model_type != "kimi_k2")
    fail("model_type", "'" + c.model_type + "' is not supported");
  if (get_str(j, "hidden_act", "silu") != "silu") fail("hidden_act", "must be silu");
  if (j.contains("attention_bias") && j["attention_bias"] == true) fail("attention_bias", "true is not supported");
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"] == true)
    fail("tie_word_embeddings", "true is not supported");
  if (get_int(j, "moe_layer_freq", int64_t{1}) != 1) fail("moe_layer_freq", "must be 1");

  c.vocab_size = get_int(j, "vocab_size");
  c.hidden_size = get_int(j, "hidden_size");
  c.intermediate_size = get_int(j, "intermediate_size");
  c.num_hidden_layers = get_int(j, "num_hidden_layers");
  c.num_nextn_predict_layers = get_int(j, "num_nextn_predict_layers", int64_t{0}, 0);
  c.num_attention_heads = get_int(j, "num_attention_heads");
  if (j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null() &&
      get_int(j, "num_key_value_heads") != c.num_attention_heads)
    fail("num_key_value_heads", "must equal num_attention_heads (MLA)");
  c.n_routed_experts = get_int(j, "n_routed_experts", int64_t{0}, 0);
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = get_int(j, "moe_intermediate_size");
    c.n_shared_experts = get_int(j, "n_shared_experts", int64_t{0}, 0);
    c.num_experts_per_tok = get_int(j, "num_experts_per_tok");
    c.first_k_dense_replace = get_int(j, "first_k_dense_replace", int64_t{0}, 0);
    c.n_group = get_int(j, "n_group", int64_t{1});
    c.topk_group = get_int(j, "topk_group", int64_t{1});
    const std::string tm = get_str(j, "topk_method", c.model_type == "deepseek_v2" ? "greedy" : "noaux_tc");
    if (tm == "greedy") c.topk_method = TopkMethod::Greedy;
    else if (tm == "group_limited_greedy") c.topk_method = TopkMethod::GroupLimitedGreedy;
    else if (tm == "noaux_tc") c.topk_method = TopkMethod::NoauxTc;
    else fail("topk_method", "'" + tm + "' is not supported (greedy, group_limited_greedy, noaux_tc)");
    const std::string sf = get_str(j, "scoring_func", c.model_type == "deepseek_v2" ? "softmax" : "sigmoid");
    if (sf == "sigmoid") c.scoring_func = ScoringFunc::Sigmoid;
    else if (sf == "softmax") c.scoring_func = ScoringFunc::Softmax;
    else fail("scoring_func", "'" + sf + "' is not supported (sigmoid, softmax)");
    c.routed_scaling_factor = get_num(j, "routed_scaling_factor", 1.0);
    if (c.routed_scaling_factor <= 0) fail("routed_scaling_factor", "must be > 0");
    if (j.contains("norm_topk_prob") && !j["norm_topk_prob"].is_boolean()) fail("norm_topk_prob", "must be a boolean");
    c.norm_topk_prob = j.value("norm_topk_prob", c.model_type != "deepseek_v2");
    if (c.num_experts_per_tok > c.n_routed_experts)
      fail("num_experts_per_tok", "exceeds n_routed_experts (" + std::to_string(c.n_routed_experts) + ")");
    if (c.num_experts_per_tok > kMaxExpertsPerToken)
      fail("num_experts_per_tok", "exceeds " + std::to_string(kMaxExpertsPerToken) + ", the most this engine routes a token to");
    if (c.n_routed_experts % c.n_group != 0) fail("n_group", "must divide n_routed_experts");
    if (c.topk_group > c.n_group) fail("topk_group", "exceeds n_group");
    if (c.topk_method != TopkMethod::Greedy &&
        c.num_experts_per_tok > c.topk_group * (c.n_routed_experts / c.n_group))
      fail("num_experts_per_tok", "exceeds the experts in topk_group groups");
    if (c.topk_method == TopkMethod::NoauxTc && c.n_routed_experts / c.n_group < 2)
      fail("n_group", "noaux_tc needs at least 2 experts per group");
    if (c.first_k_dense_replace > c.num_hidden_layers)
      fail("first_k_dense_replace", "exceeds num_hidden_layers");
  }
  if (j.contains("q_lora_rank") && !j["q_lora_rank"].is_null()) c.q_lora_rank = get_int(j, "q_lora_rank");
  c.kv_lora_rank = get_int(j, "kv_lora_rank");
  c.qk_nope_head_dim = get_int(j, "qk_nope_head_dim");
  c.qk_rope_head_dim = get_int(j, "qk_rope_head_dim");
  if (c.qk_rope_head_dim % 2 != 0) fail("qk_rope_head_dim", "must be even");
  c.v_head_dim = get_int(j, "v_head_dim");
  c.rope_theta = get_num(j, "rope_theta", 10000.0);
  if (c.rope_theta <= 1.0) fail("rope_theta", "must be > 1");
  c.rms_norm_eps = get_num(j, "rms_norm_eps", 1e-6);
  if (c.rms_norm_eps <= 0) fail("rms_norm_eps", "must be > 0");
  c.max_position_embeddings = get_int(j, "max_position_embeddings", int64_t{4096});
  c.bos_token_id = get_int(j, "bos_token_id", int64_t{0}, 0);
  c.eos_token_id = get_int(j, "eos_token_id", int64_t{1}, 0);
  if (c.bos_token_id >= c.vocab_size) fail("bos_token_id", "is outside the vocabulary");
  if (c.eos_token_id >= c.vocab_size) fail("eos_token_id", "is outside the vocabulary");
  parse_rope_scaling(j, c);
  parse_quantization(j, c);
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& p) {
  const auto file = std::filesystem::is_directory(p) ? p / "config.json" : p;
  std::ifstream in(file);
  if (!in) throw ConfigError("cannot open " + file.string());
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw ConfigError(file.string() + ": invalid JSON: " + e.what());
  }
  try {
    return from_json(j);
  } catch (const json::exception& e) {
    throw ConfigError(file.string() + ": " + e.what());
  }
}

json ModelConfig::to_json() const {
  json j;
  j["architectures"] = {model_type == "deepseek_v2" ? "DeepseekV2ForCausalLM" : "DeepseekV3ForCausalLM"};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_nextn_predict_layers"] = num_nextn_predict_layers;
  j["first_k_dense_replace"] = first_k_dense_replace;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_attention_heads;
  j["n_routed_experts"] = n_routed_experts;
  j["n_shared_experts"] = n_shared_experts;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["n_group"] = n_group;
  j["topk_group"] = topk_group;
  j["topk_method"] = topk_method == TopkMethod::Greedy ? "greedy"
                     : topk_method == TopkMethod::GroupLimitedGreedy ? "group_limited_greedy"
                                                                     : "noaux_tc";
  j["scoring_func"] = scoring_func == ScoringFunc::Sigmoid ? "sigmoid" : "softmax";
  j["routed_scaling_factor"] = routed_scaling_factor;
  j["norm_topk_prob"] = norm_topk_prob;
  j["q_lora_rank"] = q_lora_rank > 0 ? json(q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = kv_lora_rank;
  j["qk_nope_head_dim"] = qk_nope_head_dim;
  j["qk_rope_head_dim"] = qk_rope_head_dim;
  j["v_head_dim"] = v_head_dim;
  j["rope_theta"] = rope_theta;
  if (yarn) {
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", yarn->factor},
                         {"original_max_position_embeddings", yarn->original_max_position_embeddings},
                         {"beta_fast", yarn->beta_fast},
                         {"beta_slow", yarn->beta_slow},
                         {"mscale", yarn->mscale},
                         {"mscale_all_dim", yarn->mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["rms_norm_eps"] = rms_norm_eps;
  j["max_position_embeddings"] = max_position_embeddings;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["tie_word_embeddings"] = false;
  j["moe_layer_freq"] = 1;
  j["torch_dtype"] = "bfloat16";
  if (fp8_weights) {
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", {128, 128}}};
  }
  return j;
}

}  // namespace moemesh
