#include "model/checkpoint_maker.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/safetensors.h"
#include "kernels/cpu/thread_pool.h"
#include "model/weight_loader.h"

namespace moemesh {
namespace {

using nlohmann::json;

ModelConfig base_v3() {
  ModelConfig c;
  c.model_type = "deepseek_v3";
  c.topk_method = TopkMethod::NoauxTc;
  c.scoring_func = ScoringFunc::Sigmoid;
  c.norm_topk_prob = true;
  c.rope_theta = 10000.0;
  c.yarn = YarnScaling{40.0, 4096, 32.0, 1.0, 1.0, 1.0};
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 163840;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  return c;
}

// Small enough for unit tests; sizes not multiples of 128 exercise partial fp8 blocks.
ModelConfig tiny() {
  ModelConfig c = base_v3();
  c.vocab_size = 1024;
  c.hidden_size = 192;
  c.intermediate_size = 320;
  c.moe_intermediate_size = 80;
  c.num_hidden_layers = 3;
  c.num_nextn_predict_layers = 1;
  c.first_k_dense_replace = 1;
  c.num_attention_heads = 4;
  c.n_routed_experts = 16;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 4;
  c.n_group = 4;
  c.topk_group = 2;
  c.routed_scaling_factor = 2.5;
  c.q_lora_rank = 96;
  c.kv_lora_rank = 64;
  c.qk_nope_head_dim = 32;
  c.qk_rope_head_dim = 16;
  c.v_head_dim = 32;
  return c;
}

ModelConfig small() {
  ModelConfig c = base_v3();
  c.vocab_size = 8192;
  c.hidden_size = 1024;
  c.intermediate_size = 2816;
  c.moe_intermediate_size = 384;
  c.num_hidden_layers = 6;
  c.num_nextn_predict_layers = 1;
  c.first_k_dense_replace = 1;
  c.num_attention_heads = 16;
  c.n_routed_experts = 64;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 6;
  c.n_group = 8;
  c.topk_group = 4;
  c.routed_scaling_factor = 2.5;
  c.q_lora_rank = 384;
  c.kv_lora_rank = 256;
  c.qk_nope_head_dim = 64;
  c.qk_rope_head_dim = 32;
  c.v_head_dim = 64;
  return c;
}

// The real DeepSeek-V3 layer shapes (use --layers / --experts to size it).
ModelConfig v3() {
  ModelConfig c = base_v3();
  c.vocab_size = 129280;
  c.hidden_size = 7168;
  c.intermediate_size = 18432;
  c.moe_intermediate_size = 2048;
  c.num_hidden_layers = 61;
  c.num_nextn_predict_layers = 1;
  c.first_k_dense_replace = 3;
  c.num_attention_heads = 128;
  c.n_routed_experts = 256;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 8;
  c.n_group = 8;
  c.topk_group = 4;
  c.routed_scaling_factor = 2.5;
  c.q_lora_rank = 1536;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  return c;
}

}  // namespace

std::vector<std::string> model_presets() {
  return {"tiny", "tiny-nolora", "tiny-v2", "small", "demo", "real-vocab", "v3"};
}

ModelConfig preset_config(const std::string& name) {
  if (name == "tiny") return tiny();
  if (name == "tiny-nolora") {
    ModelConfig c = tiny();
    c.q_lora_rank = 0;
    return c;
  }
  if (name == "tiny-v2") {
    // DeepSeek-V2 style: softmax scores, group-limited greedy, 2 shared experts, no MTP.
    ModelConfig c = tiny();
    c.model_type = "deepseek_v2";
    c.scoring_func = ScoringFunc::Softmax;
    c.topk_method = TopkMethod::GroupLimitedGreedy;
    c.norm_topk_prob = false;
    c.routed_scaling_factor = 1.0;
    c.n_shared_experts = 2;
    c.num_nextn_predict_layers = 0;
    c.q_lora_rank = 0;
    return c;
  }
  if (name == "small") return small();
  if (name == "demo" || name == "real-vocab") {
    // The real vocabulary, so the demo speaks DeepSeek-V3 tokens.
    ModelConfig c = small();
    c.vocab_size = 129280;
    c.hidden_size = 512;
    c.intermediate_size = 1408;
    c.moe_intermediate_size = 256;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.q_lora_rank = 256;
    c.kv_lora_rank = 128;
    c.qk_nope_head_dim = 64;
    c.qk_rope_head_dim = 32;
    c.v_head_dim = 64;
    c.n_routed_experts = 32;
    c.n_group = 4;
    c.topk_group = 2;
    if (name == "real-vocab") {
      // The engine benchmarks' model: the real vocabulary, whose LM head is most of
      // a decode step, and six layers of 64 experts (6 active, groups 8 / 4).
      c.num_hidden_layers = 6;
      c.n_routed_experts = 64;
      c.n_group = 8;
      c.topk_group = 4;
    }
    return c;
  }
  if (name == "v3") return v3();
  throw std::invalid_argument("unknown preset '" + name + "'");
}

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t name_hash(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Uniform values in [center - amp, center + amp], reproducible per (seed, name, index)
// whatever the thread count.
std::vector<float> random_values(const std::string& name, uint64_t seed, int64_t n, float amp,
                                 float center = 0.0f) {
  std::vector<float> v(n);
  const uint64_t base = name_hash(name, seed);
  constexpr int64_t kBlock = 4096;
  cpu::parallel_for((n + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      uint64_t s = base + static_cast<uint64_t>(b) * 0x632be59bd9b4e019ull;
      for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) {
        const double u = static_cast<double>(splitmix(s) >> 11) * 0x1.0p-53;
        v[i] = center + amp * static_cast<float>(2.0 * u - 1.0);
      }
    }
  });
  return v;
}

std::vector<uint8_t> to_bytes(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  if (t == DType::F32) {
    std::memcpy(out.data(), v.data(), out.size());
  } else if (t == DType::BF16) {
    uint16_t* o = reinterpret_cast<uint16_t*>(out.data());
    cpu::parallel_for(static_cast<int64_t>(v.size()), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) o[i] = f32_to_bf16(v[i]);
    });
  } else {
    throw std::invalid_argument("to_bytes: unsupported dtype");
  }
  return out;
}

// Block-quantizes [rows, cols] to fp8 with one scale per 128×128 block (amax / 448).
void quantize_fp8(const std::vector<float>& w, int64_t rows, int64_t cols, std::vector<uint8_t>& q,
                  std::vector<float>& scales) {
  const int64_t B = LinearWeight::kBlock;
  const int64_t br = (rows + B - 1) / B, bc = (cols + B - 1) / B;
  q.resize(rows * cols);
  scales.assign(br * bc, 1.0f);
  cpu::parallel_for(br, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r1 = std::min(rows, (i + 1) * B);
      for (int64_t j = 0; j < bc; ++j) {
        const int64_t c1 = std::min(cols, (j + 1) * B);
        float amax = 0.0f;
        for (int64_t r = i * B; r < r1; ++r)
          for (int64_t c = j * B; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
        const float s = amax > 0 ? amax / kFp8E4M3Max : 1.0f;
        scales[i * bc + j] = s;
        for (int64_t r = i * B; r < r1; ++r)
          for (int64_t c = j * B; c < c1; ++c) q[r * cols + c] = f32_to_fp8e4m3(w[r * cols + c] / s);
      }
    }
  });
}

class ShardedWriter {
 public:
  ShardedWriter(std::filesystem::path dir, int64_t shard_bytes) : dir_(std::move(dir)), shard_bytes_(shard_bytes) {}

  void add(const std::string& name, DType t, const Shape& shape, std::vector<uint8_t> bytes) {
    if (!current_.empty() && static_cast<int64_t>(current_.bytes() + bytes.size()) > shard_bytes_) flush();
    current_.add(name, t, shape, std::move(bytes));
  }

  void finish() {
    flush();
    const size_t n = shards_.size();
    if (n == 1) {
      std::filesystem::rename(dir_ / shards_[0].first, dir_ / "model.safetensors");
      return;
    }
    json index;
    index["metadata"] = {{"total_size", total_}};
    json map = json::object();
    for (size_t i = 0; i < n; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, n);
      std::filesystem::rename(dir_ / shards_[i].first, dir_ / name);
      for (const auto& t : shards_[i].second) map[t] = name;
    }
    index["weight_map"] = map;
    std::ofstream(dir_ / "model.safetensors.index.json") << index.dump(2) << "\n";
  }

 private:
  void flush() {
    if (current_.empty()) return;
    const std::string tmp = "shard-" + std::to_string(shards_.size()) + ".partial";
    current_.set_metadata({{"format", "pt"}});
    current_.write(dir_ / tmp);
    total_ += current_.bytes();
    shards_.emplace_back(tmp, current_.names());
    current_ = SafetensorsWriter();
  }

  std::filesystem::path dir_;
  int64_t shard_bytes_;
  SafetensorsWriter current_;
  std::vector<std::pair<std::string, std::vector<std::string>>> shards_;
  size_t total_ = 0;
};

struct Generator {
  const ModelConfig& c;
  const MakeModelOptions& o;
  ShardedWriter& w;

  void linear(const std::string& prefix, int64_t out, int64_t in, float gain = 1.0f, bool quantize = true) {
    const std::string name = prefix + ".weight";
    // Uniform with variance gain² / in keeps activations at unit scale.
    const float amp = gain * std::sqrt(3.0f / static_cast<float>(in));
    std::vector<float> v = random_values(name, o.seed, out * in, amp);
    if (o.fp8 && quantize) {
      std::vector<uint8_t> q;
      std::vector<float> s;
      quantize_fp8(v, out, in, q, s);
      const int64_t B = LinearWeight::kBlock;
      w.add(name, DType::F8_E4M3, {out, in}, std::move(q));
      w.add(prefix + ".weight_scale_inv", DType::F32, {(out + B - 1) / B, (in + B - 1) / B}, to_bytes(s, DType::F32));
    } else {
      w.add(name, DType::BF16, {out, in}, to_bytes(v, DType::BF16));
    }
  }
  void norm(const std::string& name, int64_t n) {
    w.add(name, DType::BF16, {n}, to_bytes(random_values(name, o.seed, n, 0.1f, 1.0f), DType::BF16));
  }
  void mlp(const std::string& p, int64_t inter) {
    linear(p + ".gate_proj", inter, c.hidden_size);
    linear(p + ".up_proj", inter, c.hidden_size);
    linear(p + ".down_proj", c.hidden_size, inter, 0.5f);
  }
  void layer(int64_t l) {
    const std::string p = layer_prefix(l);
    const int64_t H = c.hidden_size, nh = c.num_attention_heads;
    norm(p + "input_layernorm.weight", H);
    norm(p + "post_attention_layernorm.weight", H);
    const std::string a = p + "self_attn";
    if (c.q_lora_rank > 0) {
      linear(a + ".q_a_proj", c.q_lora_rank, H);
      norm(a + ".q_a_layernorm.weight", c.q_lora_rank);
      linear(a + ".q_b_proj", nh * c.qk_head_dim(), c.q_lora_rank);
    } else {
      linear(a + ".q_proj", nh * c.qk_head_dim(), H);
    }
    linear(a + ".kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, H);
    norm(a + ".kv_a_layernorm.weight", c.kv_lora_rank);
    linear(a + ".kv_b_proj", nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
    linear(a + ".o_proj", H, nh * c.v_head_dim, 0.5f);
    if (!c.is_moe_layer(l)) {
      mlp(p + "mlp", c.intermediate_size);
      return;
    }
    // A strong gate so that tokens route to different experts.
    linear(p + "mlp.gate", c.n_routed_experts, H, 3.0f, false);
    if (c.topk_method == TopkMethod::NoauxTc) {
      const std::string b = p + "mlp.gate.e_score_correction_bias";
      w.add(b, DType::F32, {c.n_routed_experts},
            to_bytes(random_values(b, o.seed, c.n_routed_experts, 0.05f), DType::F32));
    }
    for (int64_t e = 0; e < c.n_routed_experts; ++e) mlp(p + "mlp.experts." + std::to_string(e), c.moe_intermediate_size);
    if (c.n_shared_experts > 0) mlp(p + "mlp.shared_experts", c.moe_intermediate_size * c.n_shared_experts);
  }
  void embedding(const std::string& name) {
    w.add(name, DType::BF16, {c.vocab_size, c.hidden_size},
          to_bytes(random_values(name, o.seed, c.vocab_size * c.hidden_size, 1.0f), DType::BF16));
  }
};

}  // namespace

ModelConfig make_model(const MakeModelOptions& o, const std::filesystem::path& out) {
  ModelConfig c = preset_config(o.preset);
  if (o.layers > 0) {
    c.num_hidden_layers = o.layers;
    c.first_k_dense_replace = std::min(c.first_k_dense_replace, o.layers - 1);
  }
  if (o.experts > 0) {
    c.n_routed_experts = o.experts;
    c.n_group = std::min(c.n_group, o.experts);
    while (o.experts % c.n_group) --c.n_group;
    c.topk_group = std::min(c.topk_group, c.n_group);
    c.num_experts_per_tok = std::min(c.num_experts_per_tok, o.experts);
  }
  if (o.vocab > 0) c.vocab_size = o.vocab;
  c.fp8_weights = o.fp8;
  // Round-trip through the validator so a bad override is refused here.
  c = ModelConfig::from_json(c.to_json());

  std::filesystem::create_directories(out);
  for (const auto& e : std::filesystem::directory_iterator(out))
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
      std::filesystem::remove(e.path());
  ShardedWriter w(out, o.shard_bytes);
  Generator g{c, o, w};
  g.embedding("model.embed_tokens.weight");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    g.layer(l);
    spdlog::info("make-model: layer {}/{}", l + 1, c.num_hidden_layers);
  }
  g.norm("model.norm.weight", c.hidden_size);
  g.linear("lm_head", c.vocab_size, c.hidden_size, 4.0f, false);
  for (int64_t m = 0; m < c.num_nextn_predict_layers; ++m) {
    const int64_t l = c.num_hidden_layers + m;
    const std::string p = layer_prefix(l);
    g.norm(p + "enorm.weight", c.hidden_size);
    g.norm(p + "hnorm.weight", c.hidden_size);
    g.linear(p + "eh_proj", c.hidden_size, 2 * c.hidden_size, 1.0f, false);
    g.norm(p + "shared_head.norm.weight", c.hidden_size);
    g.layer(l);
  }
  w.finish();
  std::ofstream(out / "config.json") << c.to_json().dump(2) << "\n";
  return c;
}

void dequantize_checkpoint(const std::filesystem::path& in, const std::filesystem::path& out, DType dtype) {
  ModelConfig c = ModelConfig::load(in);
  Checkpoint ck(in);
  std::filesystem::create_directories(out);
  for (const auto& e : std::filesystem::directory_iterator(out))
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
      std::filesystem::remove(e.path());
  ShardedWriter w(out, int64_t{1} << 30);
  for (const std::string& name : ck.names()) {
    if (name.ends_with(".weight_scale_inv")) continue;
    TensorView t = ck.get(name);
    if (t.dtype != DType::F8_E4M3) {
      const auto* p = static_cast<const uint8_t*>(t.data);
      w.add(name, t.dtype, t.shape, std::vector<uint8_t>(p, p + t.nbytes()));
      continue;
    }
    const std::string prefix = name.substr(0, name.size() - std::string(".weight").size());
    LinearWeight lw = load_linear(ck, prefix, t.dim(0), t.dim(1));
    std::vector<float> v(t.numel());
    for (int64_t r = 0; r < lw.out(); ++r)
      for (int64_t i = 0; i < lw.in(); ++i) v[r * lw.in() + i] = lw.at(r, i);
    w.add(name, dtype, t.shape, to_bytes(v, dtype));
  }
  w.finish();
  c.fp8_weights = false;
  std::ofstream(out / "config.json") << c.to_json().dump(2) << "\n";
}

}  // namespace moemesh
