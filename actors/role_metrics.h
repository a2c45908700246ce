// A role's Prometheus metrics: its registry, with `role` and `instance` labels
// on every family, served on its own port when given an address (roles in one
// process each get their own port; the gateway also serves its own /metrics).
#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace prometheus {
class Exposer;
}

namespace moemesh {

class RoleMetrics {
 public:
  // bind: "127.0.0.1:9100" (port 0: any free port) or empty for no endpoint.
  RoleMetrics(const std::string& role, const std::string& instance, const std::string& bind);
  ~RoleMetrics();

  prometheus::Family<prometheus::Counter>& counter(const std::string& name, const std::string& help);
  prometheus::Family<prometheus::Gauge>& gauge(const std::string& name, const std::string& help);
  prometheus::Family<prometheus::Histogram>& histogram(const std::string& name, const std::string& help);

  // "http://127.0.0.1:PORT/metrics", or "" when not served.
  const std::string& url() const { return url_; }
  std::string text() const;  // the exposition, for tests and logs

 private:
  std::string role_, instance_, url_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// Latency buckets shared by the roles, in seconds.
const prometheus::Histogram::BucketBoundaries& latency_buckets();

}  // namespace moemesh
