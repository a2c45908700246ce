#include "bench_clients.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include "services/attention/client.h"

namespace moemesh::cli {

using clock_type = std::chrono::steady_clock;

std::vector<std::vector<int32_t>> random_prompts(int batch, int64_t len, int64_t vocab) {
  std::vector<std::vector<int32_t>> out(batch);
  uint64_t x = 12345;
  for (auto& p : out)
    for (int64_t i = 0; i < len; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      p.push_back(static_cast<int32_t>((x >> 33) % vocab));
    }
  return out;
}

std::vector<std::vector<int32_t>> text_prompts(const std::vector<int32_t>& tokens, int batch, int64_t len) {
  if (static_cast<int64_t>(tokens.size()) < len + batch)
    throw std::runtime_error("the text has " + std::to_string(tokens.size()) + " tokens: too few for " +
                             std::to_string(batch) + " prompts of " + std::to_string(len));
  std::vector<std::vector<int32_t>> out;
  const int64_t span = static_cast<int64_t>(tokens.size()) - len;
  for (int i = 0; i < batch; ++i) {
    const int64_t at = span * i / batch;
    out.emplace_back(tokens.begin() + at, tokens.begin() + at + len);
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

namespace {
EngineOptions local_options(int64_t kv_tokens) {
  EngineOptions eo;
  eo.kv_tokens = kv_tokens;
  eo.prefix_cache = false;
  return eo;
}
}  // namespace

LocalRunner::LocalRunner(const std::string& model, int k, bool adaptive, int64_t kv_tokens)
    : engine_(model, local_options(kv_tokens)) {
  SchedulerOptions so;
  so.adaptive_speculation = adaptive;
  scheduler_ = std::make_unique<Scheduler>(engine_, so);
  if (k > 0) {
    drafter_ = std::make_unique<LocalDrafter>(engine_);
    scheduler_->set_drafter(drafter_.get(), k);
  }
}

double LocalRunner::run(const std::vector<std::vector<int32_t>>& prompts, int64_t n) {
  const auto t0 = clock_type::now();
  for (const auto& p : prompts) {
    GenerationRequest req;
    req.id = next_id_++;
    req.prompt = p;
    req.max_new_tokens = n;
    scheduler_->submit(std::move(req));
  }
  int64_t tokens = 0;
  while (!scheduler_->idle()) {
    for (const auto& ev : scheduler_->step()) tokens += ev.token >= 0;
    ++steps_;
  }
  return static_cast<double>(tokens) / std::chrono::duration<double>(clock_type::now() - t0).count();
}

ClientRun run_clients(zmq::context_t& ctx, const std::string& attention, const std::vector<std::vector<int32_t>>& prompts,
                      int64_t n) {
  std::atomic<int64_t> tokens{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> th;
  const auto t0 = clock_type::now();
  for (size_t i = 0; i < prompts.size(); ++i)
    th.emplace_back([&, i] {
      try {
        AttentionClient c(ctx, attention);
        GenerationRequest r;
        r.prompt = prompts[i];
        r.max_new_tokens = n;
        const auto u = c.generate(r);
        tokens += static_cast<int64_t>(u.tokens.size());
        if (u.finish == FinishReason::Error) throw std::runtime_error(u.error);
      } catch (const std::exception& e) {
        ++failed;
        spdlog::warn("bench: request {} failed: {}", i, e.what());
      }
    });
  for (auto& t : th) t.join();
  ClientRun r;
  r.tokens = tokens;
  r.failed = failed;
  r.tokens_per_s = static_cast<double>(tokens) / std::chrono::duration<double>(clock_type::now() - t0).count();
  return r;
}

ClientRun run_clients_repeated(zmq::context_t& ctx, const std::string& attention,
                               const std::vector<std::vector<int32_t>>& prompts, int64_t n, int repeat) {
  ClientRun out = run_clients(ctx, attention, prompts, n);
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r) {
    const ClientRun one = run_clients(ctx, attention, prompts, n);
    runs.push_back(one.tokens_per_s);
    out.failed += one.failed;
    out.tokens = one.tokens;
  }
  out.tokens_per_s = median(runs);
  return out;
}

}  // namespace moemesh::cli
