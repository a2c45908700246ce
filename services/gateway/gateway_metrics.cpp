#include "gateway_metrics.h"

#include <prometheus/text_serializer.h>

namespace moemesh {
namespace {
const prometheus::Histogram::BucketBoundaries kLatency{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
const prometheus::Histogram::BucketBoundaries kPerToken{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
}  // namespace

GatewayMetrics::GatewayMetrics(const std::string& instance)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter().Name("moemesh_requests_total").Help("Requests answered, by route and HTTP status")
                    .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_)),
      ttft_(prometheus::BuildHistogram().Name("moemesh_time_to_first_token_seconds").Help("From request to first generated token")
                .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_).Add({}, kLatency)),
      tpot_(prometheus::BuildHistogram().Name("moemesh_time_per_output_token_seconds").Help("Time per generated token after the first")
                .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_).Add({}, kPerToken)),
      e2e_(prometheus::BuildHistogram().Name("moemesh_request_duration_seconds").Help("From request to last token")
               .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_).Add({}, kLatency)),
      prompt_tokens_(prometheus::BuildCounter().Name("moemesh_prompt_tokens_total").Help("Prompt tokens of finished generations")
                         .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_).Add({})),
      generated_tokens_(prometheus::BuildCounter().Name("moemesh_generated_tokens_total").Help("Tokens generated")
                            .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_).Add({})),
      in_flight_(prometheus::BuildGauge().Name("moemesh_generations_in_flight").Help("Generations running through the gateway")
                     .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_).Add({})),
      kv_pages_(prometheus::BuildGauge().Name("moemesh_kv_cache_pages").Help("Latent KV cache pages of the attention role, by state")
                    .Labels({{"role", "attention"}, {"instance", instance}}).Register(*registry_)),
      running_(prometheus::BuildGauge().Name("moemesh_batch_size").Help("Requests in the running batch")
                   .Labels({{"role", "attention"}, {"instance", instance}}).Register(*registry_).Add({})),
      waiting_(prometheus::BuildGauge().Name("moemesh_queue_depth").Help("Requests waiting for admission")
                   .Labels({{"role", "attention"}, {"instance", instance}}).Register(*registry_).Add({})),
      attention_up_(prometheus::BuildGauge().Name("moemesh_attention_up").Help("1 while some attention replica answers")
                        .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_).Add({})),
      drafted_(prometheus::BuildCounter().Name("moemesh_mtp_drafted_tokens_total").Help("Draft tokens verified, by draft position")
                   .Labels({{"role", "attention"}, {"instance", instance}}).Register(*registry_)),
      accepted_(prometheus::BuildCounter().Name("moemesh_mtp_accepted_tokens_total").Help("Draft tokens accepted, by draft position")
                    .Labels({{"role", "attention"}, {"instance", instance}}).Register(*registry_)),
      replicas_(prometheus::BuildGauge().Name("moemesh_attention_replicas").Help("Attention replicas the gateway knows, by state")
                    .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_)),
      replica_requests_(prometheus::BuildCounter().Name("moemesh_replica_requests_total")
                            .Help("Generations (and resumptions) the gateway sent each attention replica")
                            .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_)),
      resumed_(prometheus::BuildCounter().Name("moemesh_resumed_streams_total")
                   .Help("Streams moved to another replica, by reason (disconnect, stall, draining, overloaded)")
                   .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_)),
      routed_(prometheus::BuildCounter().Name("moemesh_routing_decisions_total")
                  .Help("Replica choices: for a cached prefix (cached) or by the policy's load rule (other)")
                  .Labels({{"role", "gateway"}, {"instance", instance}}).Register(*registry_)) {}

void GatewayMetrics::request(const std::string& route, int status) {
  requests_.Add({{"route", route}, {"status", std::to_string(status)}}).Increment();
}

void GatewayMetrics::generation(int64_t prompt_tokens, int64_t completion_tokens, double ttft, double total) {
  prompt_tokens_.Increment(static_cast<double>(prompt_tokens));
  generated_tokens_.Increment(static_cast<double>(completion_tokens));
  if (completion_tokens > 0) ttft_.Observe(ttft);
  if (completion_tokens > 1) tpot_.Observe((total - ttft) / static_cast<double>(completion_tokens - 1));
  e2e_.Observe(total);
}

void GatewayMetrics::attention_stats(const nlohmann::json& s) {
  std::lock_guard<std::mutex> lock(mu_);
  // Counters follow running totals (the gateway's own, and the replicas').
  auto grow = [&](prometheus::Counter& c, const std::string& name, double now) {
    const double before = last_[name];
    if (now > before) c.Increment(now - before);
    last_[name] = now;
  };
  if (s.is_object() && s.contains("replicas")) {
    std::map<std::string, double> states{{"ready", 0}, {"draining", 0}, {"down", 0}, {"hung", 0}};
    for (const auto& r : s["replicas"]) {
      states[r.value("state", std::string("ready"))] += 1;
      const std::string name = r.value("name", std::string());
      grow(replica_requests_.Add({{"replica", name}}), "requests/" + name, r.value("requests", 0.0));
    }
    for (const auto& [state, n] : states) replicas_.Add({{"state", state}}).Set(n);
    const nlohmann::json resumed = s.value("resumed", nlohmann::json::object());
    for (const auto& [reason, n] : resumed.items()) grow(resumed_.Add({{"reason", reason}}), "resumed/" + reason, n.get<double>());
    const auto routing = s.value("routing", nlohmann::json::object());
    grow(routed_.Add({{"choice", "cached"}}), "routed/cached", routing.value("cached", 0.0));
    grow(routed_.Add({{"choice", "other"}}), "routed/other", routing.value("other", 0.0));
  }
  if (!s.is_object() || !s.contains("kv_pages_used")) {
    attention_up_.Set(0);
    return;
  }
  attention_up_.Set(1);
  const double used = s.value("kv_pages_used", 0.0), cached = s.value("kv_pages_cached", 0.0),
               total = s.value("kv_pages_total", 0.0);
  kv_pages_.Add({{"state", "used"}}).Set(used);
  kv_pages_.Add({{"state", "cached"}}).Set(cached);
  kv_pages_.Add({{"state", "free"}}).Set(total - used - cached);
  running_.Set(s.value("running", 0.0));
  waiting_.Set(s.value("waiting", 0.0));
  auto mirror = [&](prometheus::Family<prometheus::Counter>& f, const char* key) {
    if (!s.contains(key) || !s[key].is_array()) return;
    for (size_t i = 0; i < s[key].size(); ++i) {
      const std::string name = std::string(key) + std::to_string(i);
      const double now = s[key][i].get<double>(), before = last_[name];
      if (now > before) f.Add({{"position", std::to_string(i)}}).Increment(now - before);
      last_[name] = now;
    }
  };
  mirror(drafted_, "drafted");
  mirror(accepted_, "accepted");
}

std::string GatewayMetrics::serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace moemesh
