// observability/: Prometheus config and alert rules pass promtool; every role's
// exposition passes `promtool check metrics`; every metric the dashboard and the
// rules query is one that moemesh exports.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <fstream>
#include <cstring>
#include <regex>
#include <set>
#include <sstream>

#include "services/attention/client.h"
#include "services/gateway/gateway_metrics.h"
#include "services/mesh/mesh_launcher.h"
#include "tests/support/http_get.h"
#include "tests/support/shell.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {
const std::string kObs = std::string(MOEMESH_SOURCE_DIR) + "/observability";

bool have_promtool() { return sh("promtool --version > /dev/null 2>&1") == 0; }

std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// moemesh_* names in a text, without histogram suffixes.
std::set<std::string> metric_names(const std::string& text) {
  std::set<std::string> out;
  const std::regex re("moemesh_[a-z_]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    std::string n = it->str();
    for (const char* suffix : {"_bucket", "_count", "_sum"})
      if (n.size() > std::strlen(suffix) && n.compare(n.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        n.resize(n.size() - std::strlen(suffix));
    out.insert(n);
  }
  return out;
}
}  // namespace

TEST(Observability, PromtoolAcceptsTheConfigAndRules) {
  if (!have_promtool()) GTEST_SKIP() << "promtool (Debian package prometheus; scripts/setup.sh installs it)";
  EXPECT_EQ(sh("promtool check config " + kObs + "/prometheus.yml > /dev/null"), 0);
  EXPECT_EQ(sh("promtool check rules " + kObs + "/rules.yml > /dev/null"), 0);
  const auto dash = nlohmann::json::parse(read(kObs + "/grafana/moemesh.json"));
  EXPECT_EQ(dash["uid"], "moemesh");
  EXPECT_GE(dash["panels"].size(), 8u);
}

TEST(Observability, EveryRolesMetricsLintAndCoverWhatTheDashboardQueries) {
  zmq::context_t ctx(1);
  nlohmann::json j = load_cluster_json("", {"router.metrics=127.0.0.1:0", "attention.metrics_per_layer=true",
                                            "attention.metrics=127.0.0.1:0", "mtp_draft.metrics=127.0.0.1:0",
                                            "expert_hosts.0.metrics=127.0.0.1:0", "attention.speculative=2"},
                                       "inproc");
  j["model"] = test_model("tiny", true).string();
  InProcessMesh mesh(ClusterConfig::from_json(j), ctx);
  const MeshEndpoints ep = mesh.start();
  AttentionClient c(ctx, ep.attention);
  GenerationRequest r;
  r.prompt = random_tokens(6, 1024, 9);
  r.max_new_tokens = 5;
  const TokensUpdate u = c.generate(r);
  ASSERT_EQ(u.tokens.size(), 5u) << u.error;
  std::vector<std::string> texts;
  ASSERT_EQ(ep.metrics.size(), 4u) << "router, attention, mtp-draft, one expert host";
  for (const auto& url : ep.metrics) texts.push_back(http_get(url));
  EXPECT_NE(texts[1].find("moemesh_tokens_routed_by_layer_total{"), std::string::npos) << "the per-layer option";
  EXPECT_NE(texts[1].find("moemesh_dispatch_seconds_bucket{"), std::string::npos) << "attention dispatches";
  EXPECT_NE(texts[0].find("moemesh_placement_table_version{"), std::string::npos) << "the router's table";
  EXPECT_NE(texts[2].find("moemesh_draft_requests_total{"), std::string::npos) << "mtp-draft";
  EXPECT_NE(texts[1].find("moemesh_model_load_seconds{"), std::string::npos) << "load time";
  GatewayMetrics gateway("127.0.0.1:8000");
  gateway.request("chat", 200);
  gateway.generation(10, 5, 0.01, 0.05);
  gateway.attention_stats({{"kv_pages_used", 1}, {"kv_pages_total", 8}, {"running", 1}, {"waiting", 0}, {"drafted", {3}}, {"accepted", {1}}});
  texts.push_back(gateway.serialize());

  std::set<std::string> exported;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto names = metric_names(texts[i]);
    exported.insert(names.begin(), names.end());
    if (!have_promtool()) continue;
    const auto file = temp_dir("metrics") / ("role" + std::to_string(i) + ".txt");
    std::ofstream(file) << texts[i];
    EXPECT_EQ(sh("promtool check metrics < " + file.string()), 0) << texts[i].substr(0, 2000);
  }
  for (const auto& source : {kObs + "/grafana/moemesh.json", kObs + "/rules.yml"})
    for (const auto& name : metric_names(read(source))) EXPECT_TRUE(exported.count(name)) << source << " queries " << name << ", which nothing exports";
}
