// moemesh bench-chat: a multi-turn chat workload through the scheduler, with the
// prefix cache on and off in the same run: conversations over one shared system
// prompt, each turn sending the whole history (the earlier answers' tokens and
// the user's next words). Time to first token and throughput, as a chat
// service's users meet them.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>

#include <fmt/format.h>

#include "commands.h"
#include "model/scheduler.h"

namespace moemesh::cli {
namespace {

using clock_type = std::chrono::steady_clock;

struct Workload {
  int conversations = 32, turns = 6;
  int64_t system = 500, user = 40, answer = 16;
};

struct Result {
  double ttft_p50_ms = 0, ttft_p90_ms = 0, seconds = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0, generated = 0;
};

std::vector<int32_t> tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> out;
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    out.push_back(static_cast<int32_t>((x >> 33) % vocab));
  }
  return out;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// Every conversation has one turn in flight; its next turn is submitted as
// soon as the answer is complete.
Result run(Engine& e, const Workload& w, int64_t step_tokens, int max_running) {
  const int64_t V = e.config().vocab_size;
  Scheduler s(e, {.step_tokens = step_tokens, .max_running = max_running, .max_waiting = 100000});
  const auto system = tokens(w.system, V, 1);
  std::vector<std::vector<int32_t>> history(static_cast<size_t>(w.conversations));
  std::vector<int> turn(static_cast<size_t>(w.conversations), 0);
  std::map<uint64_t, clock_type::time_point> submitted;
  std::map<uint64_t, bool> seen_first;
  std::map<uint64_t, std::vector<int32_t>> answers;
  std::vector<double> ttft;
  Result r;
  auto submit = [&](int c) {
    auto& h = history[static_cast<size_t>(c)];
    const auto words = tokens(w.user, V, 1000 + static_cast<uint64_t>(c) * 100 + turn[static_cast<size_t>(c)]);
    h.insert(h.end(), words.begin(), words.end());
    const uint64_t id = static_cast<uint64_t>(c) * 1000 + static_cast<uint64_t>(turn[static_cast<size_t>(c)]);
    s.submit({id, h, w.answer, {}, {}});
    submitted[id] = clock_type::now();
    r.prompt_tokens += static_cast<int64_t>(h.size());
  };
  for (int c = 0; c < w.conversations; ++c) {
    history[static_cast<size_t>(c)] = system;
    submit(c);
  }
  const auto t0 = clock_type::now();
  while (!s.idle()) {
    for (const auto& ev : s.step()) {
      if (ev.token >= 0) {
        ++r.generated;
        answers[ev.id].push_back(ev.token);
        if (!seen_first[ev.id]) {
          seen_first[ev.id] = true;
          ttft.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - submitted[ev.id]).count());
        }
      }
      if (ev.finish == FinishReason::None) continue;
      if (ev.finish != FinishReason::Length && ev.finish != FinishReason::Stop)
        throw std::runtime_error("bench-chat: a request ended with " + std::string(finish_reason_name(ev.finish)) + ": " + ev.error);
      r.cached_tokens += ev.cached_tokens;
      const int c = static_cast<int>(ev.id / 1000);
      auto& h = history[static_cast<size_t>(c)];
      h.insert(h.end(), answers[ev.id].begin(), answers[ev.id].end());
      answers.erase(ev.id);
      if (++turn[static_cast<size_t>(c)] < w.turns) submit(c);
    }
  }
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  r.ttft_p50_ms = quantile(ttft, 0.5);
  r.ttft_p90_ms = quantile(ttft, 0.9);
  return r;
}

}  // namespace

void add_bench_chat_command(CLI::App& app) {
  struct Args {
    std::string model;
    Workload w;
    int64_t step_tokens = 512;
    int max_running = 32, repeat = 1;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-chat", "a multi-turn chat workload with the prefix cache on and off, in one run");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--conversations", a->w.conversations, "conversations at once")->check(CLI::Range(1, 4096));
  cmd->add_option("--turns", a->w.turns, "turns per conversation")->check(CLI::Range(1, 1000));
  cmd->add_option("--system", a->w.system, "tokens of the system prompt every conversation shares")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--user", a->w.user, "tokens the user adds per turn")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--answer", a->w.answer, "tokens generated per turn")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--step-tokens", a->step_tokens, "prefill and decode tokens per engine step")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-running", a->max_running, "requests in the running batch")->check(CLI::Range(1, 4096));
  cmd->add_option("--repeat", a->repeat, "runs of each, alternating (the median of each is shown)")->check(CLI::Range(1, 100));
  cmd->callback([a] {
    const Workload& w = a->w;
    const int64_t longest = w.system + w.turns * (w.user + w.answer);
    std::map<bool, std::vector<Result>> runs;
    for (int rep = 0; rep < a->repeat; ++rep)
      for (bool on : {false, true}) {
        EngineOptions eo;
        eo.prefix_cache = on;
        // Every conversation's whole history at once, and room for the cache to keep it.
        eo.kv_tokens = static_cast<int64_t>(w.conversations) * (longest + 128) * 2;
        Engine e(a->model, eo);
        runs[on].push_back(run(e, w, a->step_tokens, a->max_running));
      }
    std::cout << fmt::format("{} conversations × {} turns, system prompt {} tokens, +{} user and {} answer tokens per turn\n\n",
                             w.conversations, w.turns, w.system, w.user, w.answer);
    std::cout << "| prefix cache | prompt tokens | served from cache | TTFT p50 ms | TTFT p90 ms | generated tok/s | turns/s |\n";
    std::cout << "|---|---:|---:|---:|---:|---:|---:|\n";
    std::map<bool, Result> med;
    for (bool on : {false, true}) {
      auto v = runs[on];
      std::sort(v.begin(), v.end(), [](const Result& x, const Result& y) { return x.seconds < y.seconds; });
      const Result& r = v[v.size() / 2];
      med[on] = r;
      std::cout << fmt::format("| {} | {} | {:.1f} % | {:.0f} | {:.0f} | {:.1f} | {:.2f} |\n", on ? "on" : "off", r.prompt_tokens,
                               100.0 * static_cast<double>(r.cached_tokens) / static_cast<double>(std::max<int64_t>(r.prompt_tokens, 1)),
                               r.ttft_p50_ms, r.ttft_p90_ms, static_cast<double>(r.generated) / r.seconds,
                               w.conversations * w.turns / r.seconds);
    }
    std::cout << fmt::format("\non / off: TTFT p50 {:.2f}×, throughput {:.2f}×\n", med[true].ttft_p50_ms / med[false].ttft_p50_ms,
                             med[false].seconds / med[true].seconds);
  });
}

}  // namespace moemesh::cli
