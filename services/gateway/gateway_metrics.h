// The gateway's Prometheus metrics (moemesh_* names, base units, role and
// instance labels), and the attention role's gauges refreshed at each scrape.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace moemesh {

class GatewayMetrics {
 public:
  explicit GatewayMetrics(const std::string& instance);

  // A finished HTTP or WebSocket request (route: chat, completions, ws_chat, models, …).
  void request(const std::string& route, int status);
  // A finished generation: tokens, time to first token, whole latency (seconds).
  void generation(int64_t prompt_tokens, int64_t completion_tokens, double ttft, double total);
  void in_flight(size_t n) { in_flight_.Set(static_cast<double>(n)); }
  // The attention tier's stats JSON (GenerationClient::stats; null when no replica is known).
  void attention_stats(const nlohmann::json& s);
  // The text exposition format.
  std::string serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& tpot_;
  prometheus::Histogram& e2e_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& generated_tokens_;
  prometheus::Gauge& in_flight_;
  prometheus::Family<prometheus::Gauge>& kv_pages_;
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Gauge& attention_up_;
  prometheus::Family<prometheus::Counter>& drafted_;
  prometheus::Family<prometheus::Counter>& accepted_;
  prometheus::Family<prometheus::Gauge>& replicas_;
  prometheus::Family<prometheus::Counter>& replica_requests_;
  prometheus::Family<prometheus::Counter>& resumed_;
  prometheus::Family<prometheus::Counter>& routed_;
  std::mutex mu_;  // guards last_ (counters mirrored from the attention role's totals)
  std::map<std::string, double> last_;
};

}  // namespace moemesh
