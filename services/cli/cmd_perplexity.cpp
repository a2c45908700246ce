// moemesh perplexity: a text's perplexity under the model, in windows as
// llama.cpp's llama-perplexity scores it (model/perplexity.h), through the
// engine in this process or, with --mesh, through every role over tcp.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "model/engine.h"
#include "model/perplexity.h"
#include "services/attention/client.h"
#include "services/mesh/cluster_config.h"
#include "services/mesh/mesh_launcher.h"
#include "commands.h"
#include "engine_flags.h"
#include "text_file.h"

namespace moemesh::cli {
namespace {

// Every position's logits of each window, scored in one engine step.
std::vector<float> score_on_engine(Engine& engine, const std::vector<std::vector<int32_t>>& windows) {
  const int64_t V = engine.config().vocab_size;
  const SeqId base = 0x50504c0000000000ull;  // far from any id a server would use
  std::vector<StepInput> in;
  for (size_t i = 0; i < windows.size(); ++i) in.push_back({base + i, windows[i], true});
  std::vector<float> out;
  try {
    const StepOutput s = engine.step(in);
    for (const SeqChunk& c : s.chunks) {
      size_t first = 0;
      while (s.logit_rows[first] != c.row) ++first;
      out.insert(out.end(), s.logits.begin() + first * V, s.logits.begin() + (first + c.len) * V);
    }
  } catch (...) {
    for (size_t i = 0; i < windows.size(); ++i) engine.release(base + i);
    throw;
  }
  for (size_t i = 0; i < windows.size(); ++i) engine.release(base + i);
  return out;
}

void report(const PerplexityResult& r, int64_t ctx, const std::string& json_out) {
  std::cout << "perplexity: " << r.ppl() << " (" << r.nll << " nats/token) over " << r.scored << " scored tokens, "
            << r.windows << " windows of " << ctx << " (" << r.tokens << " tokens in the text)\n";
  if (json_out.empty()) return;
  std::ofstream o(json_out);
  o << nlohmann::json{{"ppl", r.ppl()}, {"nll", r.nll}, {"scored", r.scored}, {"windows", r.windows},
                      {"ctx", ctx}, {"tokens", r.tokens}}.dump(1)
    << "\n";
  if (!o) throw std::runtime_error("cannot write " + json_out);
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  struct Args {
    std::string model, text, tokenizer, json_out, config;
    int64_t ctx = 512, batch = 4;
    EngineFlags engine;
    bool mesh = false;
    std::vector<std::string> sets;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("perplexity",
                                 "perplexity of a text file in windows (each starts with BOS; its second half is scored)");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--text", a->text, "UTF-8 text file")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer directory (default: the model directory)");
  cmd->add_option("--ctx", a->ctx, "window length in tokens")->check(CLI::Range(int64_t{4}, int64_t{1} << 20))->capture_default_str();
  cmd->add_option("--batch", a->batch, "windows scored together in one step")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  cmd->add_option("--json", a->json_out, "also write the result as JSON to this file");
  add_engine_flags(*cmd, a->engine, /*mla=*/true);
  cmd->add_flag("--mesh", a->mesh,
                "score through the mesh: router, expert hosts, mtp-draft and attention each in its own process over tcp loopback");
  cmd->add_option("--config", a->config, "with --mesh: cluster config (default: two expert hosts holding every expert)");
  cmd->add_option("--set", a->sets, "with --mesh: override a config value (repeatable)");
  cmd->callback([a] {
    const std::vector<int32_t> tokens = tokenize_file(a->text, a->tokenizer.empty() ? a->model : a->tokenizer);
    const ModelConfig mc = ModelConfig::load(a->model);
    if (a->ctx > mc.max_position_embeddings)
      throw CLI::ValidationError("--ctx", std::to_string(a->ctx) + " exceeds the model's max_position_embeddings (" +
                                           std::to_string(mc.max_position_embeddings) + ")");
    const int32_t bos = static_cast<int32_t>(mc.bos_token_id);
    const int64_t kv = a->ctx * a->batch + 1024;
    if (!a->mesh) {
      if (!a->sets.empty() || !a->config.empty()) throw CLI::ValidationError("--set/--config", "apply only with --mesh");
      EngineOptions opts = a->engine.options();
      opts.kv_tokens = std::max(opts.kv_tokens, kv);
      Engine engine(a->model, opts);
      report(perplexity(tokens, a->ctx, bos, mc.vocab_size, a->batch,
                        [&](const auto& w) { return score_on_engine(engine, w); }),
             a->ctx, a->json_out);
      return;
    }
    if (a->engine.mla != "auto") throw CLI::ValidationError("--mla", "is not a setting of the mesh (perplexity without --mesh)");
    // f32 on every hop unless --set says otherwise, so the mesh can be compared exactly.
    std::vector<std::string> sets{"dispatch.activations=f32", "compute=" + a->engine.compute,
                                  "attention.kv_cache_dtype=" + a->engine.kv_dtype};
    sets.insert(sets.end(), a->sets.begin(), a->sets.end());
    nlohmann::json cj = load_cluster_json(a->config, sets, "tcp");
    cj["model"] = a->model;
    cj["attention"]["kv_tokens"] = std::max<int64_t>(cj["attention"].value("kv_tokens", int64_t{16384}), kv);
    zmq::context_t ctx(1);
    const auto dir = std::filesystem::temp_directory_path() / ("moemesh-perplexity-" + std::to_string(getpid()));
    PerplexityResult r;
    {
      ProcessMesh mesh(self_binary(), cj, dir, ctx);
      const MeshEndpoints ep = mesh.start([](const std::string& s) { spdlog::info("perplexity --mesh: {}", s); });
      AttentionClient client(ctx, ep.attention);
      r = perplexity(tokens, a->ctx, bos, mc.vocab_size, a->batch,
                     [&](const auto& w) { return client.score(w, false).logits; });
    }
    std::filesystem::remove_all(dir);
    report(r, a->ctx, a->json_out);
  });
}

}  // namespace moemesh::cli
