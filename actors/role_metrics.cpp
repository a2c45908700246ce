#include "actors/role_metrics.h"

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

namespace moemesh {

RoleMetrics::RoleMetrics(const std::string& role, const std::string& instance, const std::string& bind)
    : role_(role), instance_(instance), registry_(std::make_shared<prometheus::Registry>()) {
  if (bind.empty()) return;
  exposer_ = std::make_unique<prometheus::Exposer>(bind, 1);
  exposer_->RegisterCollectable(registry_);
  const auto ports = exposer_->GetListeningPorts();
  const std::string host = bind.substr(0, bind.rfind(':'));
  if (!ports.empty()) url_ = "http://" + host + ":" + std::to_string(ports[0]) + "/metrics";
}

RoleMetrics::~RoleMetrics() = default;

prometheus::Family<prometheus::Counter>& RoleMetrics::counter(const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Labels({{"role", role_}, {"instance", instance_}}).Register(*registry_);
}

prometheus::Family<prometheus::Gauge>& RoleMetrics::gauge(const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Labels({{"role", role_}, {"instance", instance_}}).Register(*registry_);
}

prometheus::Family<prometheus::Histogram>& RoleMetrics::histogram(const std::string& name, const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Labels({{"role", role_}, {"instance", instance_}}).Register(*registry_);
}

std::string RoleMetrics::text() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

}  // namespace moemesh
