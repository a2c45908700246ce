// moemesh bench: prefill and decode tokens/s at several thread counts and batch
// sizes, as medians of repeated runs after a warm-up (the first touch of the
// memory-mapped weights is not a prefill), decode speed against the measured
// read bandwidth, and with --profile the time per operation class of a step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/read_bandwidth.h"
#include "kernels/cpu/thread_pool.h"
#include "model/engine.h"
#include "model/weight_traffic.h"
#include "commands.h"
#include "engine_flags.h"

namespace moemesh::cli {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

struct RunTimes {
  double prefill_s = 0, decode_s = 0;
};

// One prefill of `batch` prompts in a single step, then `decode` steps of the
// whole batch (greedy). With a profile, each phase's classes and wall time add up.
RunTimes run_once(Engine& engine, int64_t batch, int64_t prompt, int64_t decode, StepProfile* pre, StepProfile* dec,
                  double* pre_wall, double* dec_wall) {
  const int64_t V = engine.config().vocab_size;
  std::vector<StepInput> in;
  for (int64_t s = 0; s < batch; ++s) {
    std::vector<int32_t> p(prompt);
    for (int64_t i = 0; i < prompt; ++i) p[i] = static_cast<int32_t>((s * 7919 + i * 104729) % V);
    in.push_back({static_cast<SeqId>(s + 1), p, false});
  }
  StepOutput o;
  RunTimes t;
  engine.set_profile(pre);
  auto t0 = clock_type::now();
  engine.step(in, o);
  t.prefill_s = seconds_since(t0);
  if (pre_wall) *pre_wall += t.prefill_s;
  engine.set_profile(dec);
  for (auto& x : in) x.tokens.resize(1);
  t0 = clock_type::now();
  for (int64_t d = 0; d < decode; ++d) {
    for (int64_t s = 0; s < batch; ++s) {
      const float* l = o.last_logits(s, V);
      in[s].tokens[0] = static_cast<int32_t>(std::max_element(l, l + V) - l);
    }
    engine.step(in, o);
  }
  t.decode_s = seconds_since(t0);
  if (dec_wall) *dec_wall += t.decode_s;
  engine.set_profile(nullptr);
  for (int64_t s = 0; s < batch; ++s) engine.release(static_cast<SeqId>(s + 1));
  return t;
}

nlohmann::json print_profile(const char* phase, const StepProfile& p, double wall, int64_t steps) {
  std::printf("  %s, per step (%ld steps): wall %.3f ms, classes sum to %.3f ms (%.1f%%)\n", phase,
              static_cast<long>(steps), 1e3 * wall / steps, 1e3 * p.total() / steps, 100.0 * p.total() / wall);
  nlohmann::json j = {{"phase", phase}, {"steps", steps}, {"wall_ms_per_step", 1e3 * wall / steps}};
  for (int c = 0; c < static_cast<int>(OpClass::kCount); ++c) {
    const double s = p.seconds(static_cast<OpClass>(c));
    std::printf("    %-22s %9.3f ms %6.1f%%\n", op_class_name(static_cast<OpClass>(c)), 1e3 * s / steps, 100.0 * s / wall);
    j["ms_per_step"][op_class_name(static_cast<OpClass>(c))] = 1e3 * s / steps;
  }
  return j;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  struct Args {
    std::string model, json_out;
    int64_t prompt = 64, decode = 16;
    std::vector<int64_t> batches{1, 8, 32};
    std::vector<int> threads{1, 2};
    int repetitions = 3, warmup = 1;
    bool profile = false;
    EngineFlags engine;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "measure prefill and decode tokens/s");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--prompt", a->prompt, "prompt tokens per sequence")->check(CLI::PositiveNumber);
  cmd->add_option("--decode", a->decode, "decode steps")->check(CLI::PositiveNumber);
  cmd->add_option("--batch", a->batches, "batch sizes")->check(CLI::PositiveNumber);
  cmd->add_option("--thread-counts", a->threads, "compute thread counts")->check(CLI::PositiveNumber);
  cmd->add_option("-r,--repetitions", a->repetitions, "timed runs per setting (median reported)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", a->warmup, "untimed runs first")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--profile", a->profile, "also time each operation class of a step (one more run)");
  cmd->add_option("--json", a->json_out, "also write the results as JSON");
  add_engine_flags(*cmd, a->engine, /*mla=*/false);
  cmd->callback([a] {
    int64_t max_batch = 0;
    for (int64_t b : a->batches) max_batch = std::max(max_batch, b);
    EngineOptions opts = a->engine.options();
    opts.kv_tokens = max_batch * (a->prompt + a->decode + 64) + 1024;
    opts.load_mtp = false;
    Engine engine(a->model, opts);
    const ModelConfig& c = engine.config();
    const WeightTraffic wt = decode_weight_traffic(c);
    std::printf("kernels %s, compute %s, kv cache %s (%.0f bytes/token)\n", cpu::kernel_description().c_str(),
                cpu::precision_name(opts.compute), kv_cache_dtype_name(opts.kv_dtype), engine.cache().bytes_per_token());
    std::printf("weights read per decoded token (batch 1): %.1f MB (LM head %.1f MB)\n", wt.total() / 1e6, wt.head / 1e6);
    nlohmann::json results = nlohmann::json::array();
    for (int th : a->threads) {
      cpu::set_num_threads(th);
      const double bw = cpu::measure_read_bandwidth(th);
      std::printf("\nthreads %d: read bandwidth %.1f GB/s (probe: 1 GiB vector streaming read) -> decode bound %.1f tok/s\n",
                  th, bw / 1e9, bw / wt.total());
      std::printf("batch   prefill tok/s (min-max)        decode tok/s (min-max)   decode GB/s  of probe\n");
      for (int64_t b : a->batches) {
        for (int w = 0; w < a->warmup; ++w) run_once(engine, b, a->prompt, a->decode, nullptr, nullptr, nullptr, nullptr);
        std::vector<double> pre, dec;
        for (int r = 0; r < a->repetitions; ++r) {
          const RunTimes t = run_once(engine, b, a->prompt, a->decode, nullptr, nullptr, nullptr, nullptr);
          pre.push_back(b * a->prompt / t.prefill_s);
          dec.push_back(b * a->decode / t.decode_s);
        }
        const Stats p = stats(pre), d = stats(dec);
        const double gbs = d.median / b * wt.total() / 1e9;
        std::printf("%5ld %10.1f (%7.1f-%7.1f) %12.1f (%6.1f-%6.1f) %11.2f %8.0f%%\n", static_cast<long>(b), p.median,
                    p.min, p.max, d.median, d.min, d.max, gbs, 100.0 * gbs * 1e9 / bw);
        nlohmann::json row = {{"threads", th},
                              {"batch", b},
                              {"prefill_tokens_per_s", {{"median", p.median}, {"min", p.min}, {"max", p.max}}},
                              {"decode_tokens_per_s", {{"median", d.median}, {"min", d.min}, {"max", d.max}}},
                              {"decode_weight_GBps", gbs},
                              {"read_bandwidth_Bps", bw}};
        if (a->profile) {
          StepProfile pp, dp;
          double pw = 0, dw = 0;
          run_once(engine, b, a->prompt, a->decode, &pp, &dp, &pw, &dw);
          row["profile"] = {print_profile("prefill", pp, pw, 1), print_profile("decode", dp, dw, a->decode)};
        }
        results.push_back(row);
      }
    }
    if (!a->json_out.empty()) {
      std::ofstream(a->json_out) << nlohmann::json{{"weight_bytes_per_token", wt.total()},
                                                   {"kernels", cpu::kernel_description()},
                                                   {"compute", cpu::precision_name(opts.compute)},
                                                   {"kv_cache_dtype", kv_cache_dtype_name(opts.kv_dtype)},
                                                   {"results", results}}
                                            .dump(2)
                                     << "\n";
    }
  });
}

}  // namespace moemesh::cli
