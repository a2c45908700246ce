// moemesh bench: prefill and decode tokens/s at several thread counts and batch
// sizes, and decode speed against the machine's measured memory bandwidth.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "kernels/cpu/thread_pool.h"
#include "model/engine.h"
#include "model/weight_traffic.h"
#include "services/cli/commands.h"

namespace moemesh::cli {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Read bandwidth with all compute threads summing a 512 MiB buffer, best of 3.
double measure_bandwidth() {
  const int64_t n = (int64_t{512} << 20) / 8;
  std::vector<uint64_t> buf(n, 1);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::atomic<uint64_t> total{0};
    const auto t0 = clock_type::now();
    cpu::parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = b;
      for (; i + 4 <= e; i += 4) { s0 += buf[i]; s1 += buf[i + 1]; s2 += buf[i + 2]; s3 += buf[i + 3]; }
      for (; i < e; ++i) s0 += buf[i];
      total += s0 + s1 + s2 + s3;
    });
    const double dt = seconds_since(t0);
    if (total.load() != static_cast<uint64_t>(n)) throw std::logic_error("bandwidth probe miscounted");
    best = std::max(best, n * 8.0 / dt);
  }
  return best;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  struct Args {
    std::string model, json_out;
    int64_t prompt = 64, decode = 16;
    std::vector<int64_t> batches{1, 8, 32};
    std::vector<int> threads{1, 2};
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "measure prefill and decode tokens/s");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--prompt", a->prompt, "prompt tokens per sequence")->check(CLI::PositiveNumber);
  cmd->add_option("--decode", a->decode, "decode steps")->check(CLI::PositiveNumber);
  cmd->add_option("--batch", a->batches, "batch sizes")->check(CLI::PositiveNumber);
  cmd->add_option("--thread-counts", a->threads, "compute thread counts")->check(CLI::PositiveNumber);
  cmd->add_option("--json", a->json_out, "also write the results as JSON");
  cmd->callback([a] {
    int64_t max_batch = 0;
    for (int64_t b : a->batches) max_batch = std::max(max_batch, b);
    EngineOptions opts;
    opts.kv_tokens = max_batch * (a->prompt + a->decode + 64) + 1024;
    opts.load_mtp = false;
    Engine engine(a->model, opts);
    const ModelConfig& c = engine.config();
    const int64_t V = c.vocab_size;
    const WeightTraffic wt = decode_weight_traffic(c);
    const double bw = measure_bandwidth();
    nlohmann::json results = nlohmann::json::array();
    std::cout << "weights read per decoded token (batch 1): " << wt.total() / 1e6 << " MB; memory bandwidth "
              << bw / 1e9 << " GB/s -> bound " << bw / wt.total() << " tok/s\n";
    std::cout << "threads batch  prefill_tok/s  decode_tok/s  decode_GB/s(batch1-equiv)\n";
    for (int th : a->threads) {
      cpu::set_num_threads(th);
      for (int64_t b : a->batches) {
        std::vector<StepInput> in;
        for (int64_t s = 0; s < b; ++s) {
          std::vector<int32_t> p(a->prompt);
          for (int64_t i = 0; i < a->prompt; ++i) p[i] = static_cast<int32_t>((s * 7919 + i * 104729) % V);
          in.push_back({static_cast<SeqId>(s + 1), p, false});
        }
        auto t0 = clock_type::now();
        StepOutput o = engine.step(in);
        const double prefill = seconds_since(t0);
        t0 = clock_type::now();
        for (int64_t d = 0; d < a->decode; ++d) {
          for (int64_t s = 0; s < b; ++s) {
            const float* l = o.last_logits(s, V);
            in[s].tokens = {static_cast<int32_t>(std::max_element(l, l + V) - l)};
          }
          o = engine.step(in);
        }
        const double decode = seconds_since(t0);
        for (int64_t s = 0; s < b; ++s) engine.release(static_cast<SeqId>(s + 1));
        const double pre_tps = b * a->prompt / prefill, dec_tps = b * a->decode / decode;
        const double gbs = (a->decode * wt.total() / decode) / 1e9;
        std::printf("%7d %5ld %14.1f %13.1f %12.2f\n", th, static_cast<long>(b), pre_tps, dec_tps, gbs);
        results.push_back({{"threads", th}, {"batch", b}, {"prefill_tokens_per_s", pre_tps},
                           {"decode_tokens_per_s", dec_tps}, {"decode_weight_GBps", gbs}});
      }
    }
    if (!a->json_out.empty()) {
      std::ofstream(a->json_out) << nlohmann::json{{"weight_bytes_per_token", wt.total()},
                                                   {"memory_bandwidth_Bps", bw},
                                                   {"results", results}}.dump(2) << "\n";
    }
  });
}

}  // namespace moemesh::cli
