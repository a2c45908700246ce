// moemesh bench-skew: how unevenly a model's gates route real text to its
// experts, and what the router's rebalancing does about it: two expert hosts
// each holding half of the experts (room for a quarter more), every role its own
// process over tcp; per-expert rows and per-host rows and tokens/s before, then
// one rebalance, then the same again.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_clients.h"
#include "commands.h"
#include "text_file.h"
#include "services/mesh/mesh_launcher.h"
#include "services/router/client.h"

namespace moemesh::cli {
namespace {

// Rows served so far per host name (the router's counters).
std::map<std::string, double> host_rows(const nlohmann::json& stats) {
  std::map<std::string, double> out;
  for (const auto& h : stats["hosts"]) out[h["name"].get<std::string>()] = h["rows_served"].get<double>();
  return out;
}

void print_experts(const std::vector<uint64_t>& rows) {
  const double total = std::accumulate(rows.begin(), rows.end(), 0.0);
  if (total <= 0) {
    std::cout << "no rows reported\n";
    return;
  }
  const double mean = total / static_cast<double>(rows.size());
  double var = 0;
  for (uint64_t r : rows) var += (static_cast<double>(r) - mean) * (static_cast<double>(r) - mean);
  std::vector<uint64_t> sorted = rows;
  std::sort(sorted.rbegin(), sorted.rend());
  std::printf("rows per expert since the mesh started: max / mean %.2f, min / mean %.2f, coefficient of variation %.2f, busiest quarter of the experts %.0f %% of rows\n",
              static_cast<double>(sorted.front()) / mean, static_cast<double>(sorted.back()) / mean,
              std::sqrt(var / static_cast<double>(rows.size())) / mean,
              100.0 * std::accumulate(sorted.begin(), sorted.begin() + std::max<size_t>(1, sorted.size() / 4), 0.0) / total);
  std::cout << "| expert |";
  for (size_t e = 0; e < rows.size(); ++e) std::cout << " " << e << " |";
  std::cout << "\n|---|";
  for (size_t e = 0; e < rows.size(); ++e) std::cout << "---:|";
  std::cout << "\n| share % |";
  for (uint64_t r : rows) std::printf(" %.1f |", 100.0 * static_cast<double>(r) / total);
  std::cout << "\n";
}

}  // namespace

void add_bench_skew_command(CLI::App& app) {
  struct Args {
    std::string model, text, tokenizer;
    int batch = 16;
    int64_t prompt = 32, tokens = 128;
    int repeat = 3;
    std::vector<std::string> sets;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-skew",
                                 "per-expert load of real text, per-host load and tokens/s before and after the router rebalances");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--text", a->text, "cut the prompts from this UTF-8 text")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer directory (default: the model directory)");
  cmd->add_option("--batch", a->batch, "concurrent requests")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--prompt", a->prompt, "prompt tokens per request")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  cmd->add_option("--tokens", a->tokens, "new tokens per request")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  cmd->add_option("--repeat", a->repeat, "measured runs per phase after a warm-up (the median is shown)")->check(CLI::Range(1, 100));
  cmd->add_option("--set", a->sets, "override a cluster config value (repeatable)");
  cmd->callback([a] {
    const ModelConfig mc = ModelConfig::load(a->model);
    const int64_t E = mc.n_routed_experts;
    if (E < 2) throw CLI::ValidationError("--model", "has fewer than two routed experts: nothing to spread over two hosts");
    const auto text = tokenize_file(a->text, a->tokenizer.empty() ? a->model : a->tokenizer);
    const auto ps = text_prompts(text, a->batch, a->prompt);
    const int64_t half = E / 2, capacity = half + std::max<int64_t>(1, E / 4);
    nlohmann::json hosts = nlohmann::json::array();
    hosts.push_back({{"name", "experts-0"}, {"experts", "0-" + std::to_string(half - 1)}, {"capacity", capacity}});
    hosts.push_back({{"name", "experts-1"}, {"experts", std::to_string(half) + "-" + std::to_string(E - 1)}, {"capacity", capacity}});
    std::vector<std::string> sets{"expert_hosts=" + hosts.dump(), "attention.speculative=0", "mtp_draft.enabled=false",
                                  "attention.micro_batches=1", "router.rebalance_interval_s=0",
                                  "router.rebalance_moves=" + std::to_string(std::max<int64_t>(1, E / 4))};
    sets.insert(sets.end(), a->sets.begin(), a->sets.end());
    nlohmann::json j = load_cluster_json("", sets, "tcp");
    j["model"] = a->model;
    j["attention"]["kv_tokens"] = (a->batch + 4) * (a->prompt + a->tokens + 64);
    j["attention"]["prefix_cache"] = false;
    zmq::context_t ctx(1);
    const auto dir = std::filesystem::temp_directory_path() / ("moemesh-bench-skew-" + std::to_string(getpid()));
    ProcessMesh m(self_binary(), j, dir, ctx);
    const auto ep = m.start();
    // Hosts report their rows with every heartbeat (250 ms by default).
    auto settled_stats = [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      return router_stats(ctx, ep.router);
    };
    auto phase = [&](const char* name) {
      const auto before = host_rows(router_stats(ctx, ep.router));
      const ClientRun r = run_clients_repeated(ctx, ep.attention, ps, a->tokens, a->repeat);
      const auto st = settled_stats();
      const auto after = host_rows(st);
      double total = 0;
      for (const auto& [h, rows] : after) total += rows - (before.count(h) ? before.at(h) : 0.0);
      std::printf("\n### %s: %.1f tok/s (median of %d, %d failed)\n\n| host | experts held | share of rows |\n|---|---|---:|\n", name,
                  r.tokens_per_s, a->repeat, r.failed);
      for (const auto& h : st["hosts"]) {
        const std::string n = h["name"];
        const double rows = after.at(n) - (before.count(n) ? before.at(n) : 0.0);
        std::printf("| %s | %zu | %.1f %% |\n", n.c_str(), h["experts"].size(), total > 0 ? 100.0 * rows / total : 0.0);
      }
      std::cout << "\n";
      print_experts(st["rows_per_expert"].get<std::vector<uint64_t>>());
      return r.tokens_per_s;
    };
    std::printf("%s: %lld routed experts, %lld per token, two hosts of %lld experts each with room for %lld\n",
                a->model.c_str(), static_cast<long long>(E), static_cast<long long>(mc.num_experts_per_tok),
                static_cast<long long>(half), static_cast<long long>(capacity));
    const double before = phase("before rebalancing");
    const auto moves = router_command(ctx, ep.router, {RouterCommandKind::Rebalance, ""});
    // Loads take effect when the hosts confirm them.
    for (int i = 0; i < 50; ++i) {
      const auto st = router_stats(ctx, ep.router);
      bool loading = false;
      for (const auto& h : st["hosts"]) loading = loading || !h["loading"].empty();
      if (!loading) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::printf("\nrebalance: %zu moves %s\n", moves["moves"].size(), moves["moves"].dump().c_str());
    const double after = phase("after rebalancing");
    std::printf("\nafter / before: %.2f\n", before > 0 ? after / before : 0.0);
    std::filesystem::remove_all(dir);
  });
}

}  // namespace moemesh::cli
