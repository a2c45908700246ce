// moemesh up: the whole mesh on this machine — every role as actors in this
// process over inproc (default), or each role as its own process over tcp
// loopback (--processes). With no model it makes the demo model on first run.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <spdlog/spdlog.h>

#include "core/model_config.h"
#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/streaming_decoder.h"
#include "services/attention/client.h"
#include "commands.h"
#include "services/gateway/api.h"
#include "services/mesh/mesh_launcher.h"

namespace moemesh::cli {
namespace {

std::filesystem::path default_model_dir() {
  if (const char* m = std::getenv("MOEMESH_MODEL")) return m;
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::filesystem::path cache = xdg ? xdg : home ? std::filesystem::path(home) / ".cache" : "/tmp";
  return cache / "moemesh" / "models" / "demo";
}

// One chat turn through the mesh, streamed to stdout.
void chat_once(zmq::context_t& ctx, const std::string& attention, const std::string& model, const std::string& message,
               int64_t max_new) {
  auto tk = tok::Tokenizer::load(model);
  const auto tpl = tok::ChatTemplate::for_tokenizer(*tk);
  GenerationRequest r;
  r.prompt = tk->encode(tpl.render(nlohmann::json::array({{{"role", "user"}, {"content", message}}}), true), false);
  r.max_new_tokens = max_new;
  r.stop_ids = {static_cast<int32_t>(ModelConfig::load(model).eos_token_id)};
  tok::StreamingDecoder text(tk);
  AttentionClient client(ctx, attention);
  const auto t0 = std::chrono::steady_clock::now();
  const TokensUpdate all = client.generate(r, [&](const TokensUpdate& u) {
    // A random-weight model may pick ids past the tokenizer's vocabulary (padding rows).
    for (int32_t t : u.tokens)
      if (t < static_cast<int32_t>(tk->vocab_size())) std::cout << text.push(t) << std::flush;
  });
  std::cout << text.finish() << "\n";
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (all.finish == FinishReason::Error) throw std::runtime_error("generation failed: " + all.error);
  spdlog::info("{} tokens in {:.2f} s ({:.1f} tok/s), finish: {}", all.tokens.size(), dt, all.tokens.size() / dt,
               finish_reason_name(all.finish));
}

}  // namespace

void add_up_command(CLI::App& app) {
  struct Args {
    std::string model, config, chat;
    std::vector<std::string> sets;
    bool processes = false;
    int64_t max_new = 64;
    std::string host;
    int port = -1;
    std::vector<std::string> api_keys;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("up", "run the whole mesh on this machine");
  cmd->add_option("--model", a->model, "checkpoint directory (default: $MOEMESH_MODEL, else the trained demo model of the source tree, assets/moemesh-kjv/bf16; "
                  "without it, a random-weight demo model made on first run)");
  cmd->add_option("--config", a->config, "cluster config (JSON); default: every role on this machine");
  cmd->add_option("--set", a->sets, "override a config value, e.g. --set attention.speculative=0 (repeatable)");
  cmd->add_flag("--processes", a->processes, "each role as its own process over tcp loopback");
  cmd->add_option("--chat", a->chat, "send one chat message through the mesh, print the answer and stop");
  cmd->add_option("--host", a->host, "gateway address (default 127.0.0.1; config: gateway.host)");
  cmd->add_option("--port", a->port, "gateway port, 0: any free port (config: gateway.port, default " +
                                         std::to_string(GatewayOptions{}.port) + ")")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", a->api_keys, "require this API key (repeatable; config: gateway.api_keys)");
  cmd->add_option("--max-new-tokens", a->max_new, "answer length limit for --chat")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->callback([a] {
    std::vector<std::string> sets = a->sets;
    // The flags are config values too, so the config is parsed (and checked) once.
    if (!a->host.empty()) sets.push_back("gateway.host=" + nlohmann::json(a->host).dump());
    if (a->port >= 0) sets.push_back("gateway.port=" + std::to_string(a->port));
    if (!a->api_keys.empty()) sets.push_back("gateway.api_keys=" + nlohmann::json(a->api_keys).dump());
    nlohmann::json j = load_cluster_json(a->config, sets, a->processes ? "tcp" : "inproc");
    std::string model = !a->model.empty() ? a->model : j.value("model", std::string());
    if (model.empty() && !std::getenv("MOEMESH_MODEL") &&
        std::filesystem::exists(std::filesystem::path(MOEMESH_TRAINED_DEMO_DIR) / "config.json"))
      model = MOEMESH_TRAINED_DEMO_DIR;  // the trained demo model: it answers in words
    if (model.empty()) {
      model = default_model_dir().string();
      if (!std::filesystem::exists(std::filesystem::path(model) / "config.json")) {
        spdlog::info("making the demo model in {} (first run only)", model);
        MakeModelOptions o;
        o.preset = "demo";
        o.fp8 = true;
        o.seed = 1;
        write_model(o, model);
      }
    }
    j["model"] = model;
    spdlog::info("up: model {}", model);
    const ClusterConfig config = ClusterConfig::from_json(j);
    const auto progress = [](const std::string& s) { spdlog::info("up: {}", s); };
    zmq::context_t ctx(1);
    std::unique_ptr<InProcessMesh> local;
    std::unique_ptr<ProcessMesh> procs;
    MeshEndpoints ep;
    std::filesystem::path workdir;
    struct Cleanup {
      std::filesystem::path* dir;
      ~Cleanup() {
        std::error_code ec;
        if (!dir->empty()) std::filesystem::remove_all(*dir, ec);
      }
    } cleanup{&workdir};
    const auto t0 = std::chrono::steady_clock::now();
    if (a->processes) {
      // CURVE between the processes unless turned off (docs/SECURITY.md).
      if (j["security"].value("curve", std::string("auto")) == "auto") j["security"]["curve"] = "on";
      if (j["security"]["curve"] == "off")
        spdlog::warn("up: security.curve is off: the mesh's connections are neither authenticated nor encrypted");
      const std::string bin = self_binary();
      workdir = std::filesystem::temp_directory_path() / ("moemesh-up-" + std::to_string(getpid()));
      procs = std::make_unique<ProcessMesh>(bin, j, workdir, ctx);
      ep = procs->start(progress);
    } else {
      local = std::make_unique<InProcessMesh>(config, ctx);
      ep = local->start(progress);
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("up: mesh ready in {:.1f} s — {} attention replica(s) ({}), router {}, {} expert hosts{}", dt, ep.attention_replicas.size(),
                 ep.attention, ep.router, ep.expert_hosts.size(), ep.mtp.empty() ? "" : ", mtp-draft " + ep.mtp);
    if (!a->chat.empty()) {
      chat_once(ctx, ep.attention, model, a->chat, a->max_new);
      return;
    }
    GatewayService gateway(config.gateway, model, GatewayUpstream{ep.attention_replicas, ep.router}, ctx);
    const uint16_t port = gateway.start();
    // The first line on stdout is the URL, for whoever started us.
    const std::string scheme = config.gateway.tls_cert.empty() ? "http://" : "https://";
    std::cout << scheme << config.gateway.host << ":" << port << std::endl;
    spdlog::info("up: serving {}{}:{} (OpenAI API under /v1, chat page at /)", scheme, config.gateway.host, port);
    wait_for_signal();
    spdlog::info("up: stopping; finishing the generations in flight first");
    gateway.drain(config.drain_timeout);
    gateway.stop();
  });
}

}  // namespace moemesh::cli
