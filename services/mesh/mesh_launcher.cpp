#include "services/mesh/mesh_launcher.h"

#include "actors/curve.h"

#include <signal.h>

#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/model_config.h"
#include "services/router/client.h"

namespace moemesh {

InProcessMesh::InProcessMesh(ClusterConfig config, zmq::context_t& ctx) : c_(std::move(config)), ctx_(ctx) {}
InProcessMesh::~InProcessMesh() { stop(); }

MeshEndpoints InProcessMesh::start(const Progress& progress) {
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  MeshEndpoints ep;
  const ModelConfig mc = ModelConfig::load(c_.model);
  say("router: starting");
  router_ = std::make_unique<RouterService>(c_.router, ctx_);
  ep.router = router_->start();
  // Roles reach the router where it actually bound (a tcp port 0 became a real port).
  const std::string router = c_.router_connect == c_.router.bind ? ep.router : c_.router_connect;
  for (size_t i = 0; i < c_.expert_hosts.size(); ++i) {
    ExpertHostOptions o = c_.expert_hosts[i].options;
    o.router = router;
    o.experts = resolve_experts(c_.expert_hosts[i].experts, static_cast<int32_t>(mc.n_routed_experts));
    say("expert host " + o.name + ": loading " + std::to_string(o.experts.size()) + " experts");
    hosts_.push_back(std::make_unique<ExpertHostService>(o, ctx_));
    ep.expert_hosts.push_back(hosts_.back()->start());
  }
  if (mc.n_routed_experts > 0 && !c_.expert_hosts.empty()) wait_for_experts(ctx_, ep.router, std::chrono::seconds(120));
  const bool drafts = c_.mtp_enabled && mc.num_nextn_predict_layers > 0;
  for (int64_t i = 0; i < c_.attention_replicas; ++i) {
    const auto n = static_cast<size_t>(i);
    AttentionOptions a = c_.attention;
    a.router = router;
    a.bind = nth_endpoint(c_.attention.bind, n);
    a.metrics = nth_endpoint(c_.attention.metrics, n);
    if (c_.attention_replicas > 1) a.name = c_.attention.name + "-" + std::to_string(i);
    if (drafts) {
      say("mtp-draft: loading the MTP layer" + (c_.attention_replicas > 1 ? " for " + a.name : ""));
      MtpDraftOptions m = c_.mtp;
      m.router = router;
      m.bind = nth_endpoint(c_.mtp.bind, n);
      m.metrics = nth_endpoint(c_.mtp.metrics, n);
      mtp_.push_back(std::make_unique<MtpDraftService>(m, ctx_));
      ep.mtp_replicas.push_back(mtp_.back()->start());
      a.mtp = c_.mtp_connect == c_.mtp.bind || i > 0 ? ep.mtp_replicas.back() : c_.mtp_connect;
    } else {
      a.mtp.clear();
    }
    say("attention" + (c_.attention_replicas > 1 ? " " + a.name : std::string()) + ": loading embeddings, attention layers and the LM head");
    attention_.push_back(std::make_unique<AttentionService>(a, ctx_));
    ep.attention_replicas.push_back(attention_.back()->start());
  }
  ep.attention = ep.attention_replicas.front();
  if (!ep.mtp_replicas.empty()) ep.mtp = ep.mtp_replicas.front();
  if (!router_->metrics_url().empty()) ep.metrics.push_back(router_->metrics_url());
  for (const auto& a : attention_)
    if (!a->metrics_url().empty()) ep.metrics.push_back(a->metrics_url());
  for (const auto& m : mtp_)
    if (!m->metrics_url().empty()) ep.metrics.push_back(m->metrics_url());
  for (const auto& h : hosts_)
    if (!h->metrics_url().empty()) ep.metrics.push_back(h->metrics_url());
  return ep;
}

void InProcessMesh::stop() {
  // Clients first, so no role waits on one already gone.
  for (auto& a : attention_) a->drain(c_.drain_timeout);
  for (auto& a : attention_) a->stop();
  for (auto& m : mtp_) m->stop();
  for (auto& h : hosts_) h->stop();
  if (router_) router_->stop();
  attention_.clear();
  mtp_.clear();
  hosts_.clear();
  router_.reset();
}

ProcessMesh::ProcessMesh(std::string binary, nlohmann::json config, std::filesystem::path workdir, zmq::context_t& ctx)
    : binary_(std::move(binary)), config_(std::move(config)), ctx_(ctx) {
  // Every role in its own process: inproc addresses cannot cross, use tcp loopback.
  auto tcp = [](nlohmann::json& section) {
    if (section.is_object() && section.value("bind", "").rfind("inproc://", 0) == 0) section["bind"] = "tcp://127.0.0.1:0";
  };
  tcp(config_["router"]);
  tcp(config_["attention"]);
  tcp(config_["mtp_draft"]);
  for (auto& h : config_["expert_hosts"]) tcp(h);
  std::filesystem::create_directories(workdir);
  // CURVE on: a keyring made for this run unless one is given, and this
  // process (the gateway and the admin calls) joins it.
  auto& sec = config_["security"];
  if (!sec.is_object()) sec = nlohmann::json::object();
  if (sec.value("curve", std::string("auto")) == "on") {
    if (sec.value("keys", std::string()).empty()) {
      const auto dir = workdir / "keys";
      for (const std::string role : {"router", "attention", "mtp-draft", "gateway", "admin"}) curve::Keyring::write(dir, role, role, curve::generate());
      for (const auto& h : config_["expert_hosts"]) curve::Keyring::write(dir, "expert-host", h.value("name", std::string()), curve::generate());
      sec["keys"] = dir.string();
    }
    curve::enable(curve::Keyring::load(sec["keys"].get<std::string>(), {{"gateway", "gateway"}, {"admin", "admin"}}));
  } else {
    curve::enable(nullptr);  // this process speaks to the roles as they are set up
  }
  ClusterConfig::from_json(config_);  // fail here, not in a child
  file_ = workdir / "cluster.json";
  std::ofstream(file_) << config_.dump(2) << "\n";
}

ProcessMesh::~ProcessMesh() { stop(); }

std::unique_ptr<ChildProcess> ProcessMesh::spawn(const std::vector<std::string>& args, std::string* endpoint) {
  std::vector<std::string> argv{binary_};
  argv.insert(argv.end(), args.begin(), args.end());
  auto c = std::make_unique<ChildProcess>(argv);
  // The first line a role prints is the endpoint it bound.
  *endpoint = c->read_line(std::chrono::seconds(120));
  if (endpoint->empty()) throw std::runtime_error("moemesh " + args[0] + " " + args[1] + " did not start");
  return c;
}

MeshEndpoints ProcessMesh::start(const Progress& progress) {
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  const std::string cfg = file_.string();
  say("router: starting");
  router_args_ = {"serve", "router", "--config", cfg};
  router_ = spawn(router_args_, &ep_.router);
  const std::string set_router = "router.connect=" + ep_.router;
  for (const auto& h : config_["expert_hosts"]) {
    say("expert host " + h.value("name", std::string("?")) + ": starting");
    std::string ep;
    host_args_.push_back({"serve", "expert-host", "--config", cfg, "--name", h.value("name", ""), "--set", set_router});
    hosts_.push_back(spawn(host_args_.back(), &ep));
    ep_.expert_hosts.push_back(ep);
  }
  if (!config_["expert_hosts"].empty()) wait_for_experts(ctx_, ep_.router, std::chrono::seconds(120));
  const ModelConfig mc = ModelConfig::load(config_.value("model", std::string()));
  drafts_ = config_["mtp_draft"].value("enabled", true) && mc.num_nextn_predict_layers > 0;
  const int64_t n = config_["attention"].value("replicas", int64_t{1});
  const std::string base = config_["attention"].value("name", std::string("attention"));
  for (int64_t i = 0; i < n; ++i) add_attention(n > 1 ? base + "-" + std::to_string(i) : base);
  ep_.attention = ep_.attention_replicas.front();
  if (!ep_.mtp_replicas.empty()) ep_.mtp = ep_.mtp_replicas.front();
  return ep_;
}

ChildProcess& ProcessMesh::add_attention(const std::string& name) {
  const std::string cfg = file_.string(), set_router = "router.connect=" + ep_.router;
  const size_t i = attention_.size();
  // The i-th replica's fixed ports, if any, one up from the first's.
  auto nth = [&](const char* section, const char* key) {
    const std::string v = config_[section].value(key, std::string());
    return std::string(key) == "bind" ? "--bind=" + nth_endpoint(v, i) : "--set=" + std::string(section) + "." + key + "=" + nth_endpoint(v, i);
  };
  std::vector<std::string> attn{"serve", "attention", "--config", cfg, "--name", name, "--set", set_router, nth("attention", "bind")};
  if (!config_["attention"].value("metrics", std::string()).empty()) attn.push_back(nth("attention", "metrics"));
  if (drafts_) {
    mtp_args_.push_back({"serve", "mtp-draft", "--config", cfg, "--set", set_router, nth("mtp_draft", "bind")});
    if (!config_["mtp_draft"].value("metrics", std::string()).empty()) mtp_args_.back().push_back(nth("mtp_draft", "metrics"));
    std::string mep;
    mtp_.push_back(spawn(mtp_args_.back(), &mep));
    ep_.mtp_replicas.push_back(mep);
    attn.insert(attn.end(), {"--set", "mtp_draft.connect=" + mep});
  } else {
    attn.insert(attn.end(), {"--set", "mtp_draft.enabled=false"});
  }
  std::string ep;
  attention_args_.push_back(attn);
  attention_.push_back(spawn(attn, &ep));
  ep_.attention_replicas.push_back(ep);
  return *attention_.back();
}

ChildProcess& ProcessMesh::restart_attention(size_t i) {
  attention_.at(i)->stop(SIGKILL);
  attention_[i] = spawn(attention_args_.at(i), &ep_.attention_replicas.at(i));
  if (i == 0) ep_.attention = ep_.attention_replicas[0];
  return *attention_[i];
}

ChildProcess& ProcessMesh::add_expert_host(const std::string& name, const std::string& experts,
                                           const std::vector<std::string>& extra) {
  std::string ep;
  host_args_.push_back({"serve", "expert-host", "--config", file_.string(), "--name", name, "--experts", experts, "--set",
                        "router.connect=" + ep_.router});
  host_args_.back().insert(host_args_.back().end(), extra.begin(), extra.end());
  hosts_.push_back(spawn(host_args_.back(), &ep));
  ep_.expert_hosts.push_back(ep);
  return *hosts_.back();
}

namespace {
std::vector<std::string> with_bind(std::vector<std::string> args, const std::string& endpoint) {
  std::erase_if(args, [](const std::string& a) { return a.rfind("--bind=", 0) == 0; });
  args.insert(args.end(), {"--bind", endpoint});
  return args;
}
}  // namespace

ChildProcess& ProcessMesh::restart_router() {
  router_->stop(SIGKILL);
  std::string ep;
  router_ = spawn(with_bind(router_args_, ep_.router), &ep);
  if (ep != ep_.router) throw std::runtime_error("the router came back on " + ep + ", not " + ep_.router);
  return *router_;
}

ChildProcess& ProcessMesh::restart_mtp(size_t i) {
  if (i >= mtp_.size()) throw std::logic_error("this mesh has no mtp-draft role " + std::to_string(i));
  mtp_[i]->stop(SIGKILL);
  std::string ep;
  mtp_[i] = spawn(with_bind(mtp_args_[i], ep_.mtp_replicas[i]), &ep);
  if (ep != ep_.mtp_replicas[i]) throw std::runtime_error("mtp-draft came back on " + ep + ", not " + ep_.mtp_replicas[i]);
  return *mtp_[i];
}

ChildProcess& ProcessMesh::restart_expert_host(size_t i) {
  hosts_.at(i)->stop(SIGKILL);
  hosts_[i] = spawn(host_args_.at(i), &ep_.expert_hosts.at(i));
  return *hosts_[i];
}

void ProcessMesh::stop() {
  // Front to back, each given its drain time: SIGKILL only for a role that hangs.
  const auto grace = ClusterConfig::from_json(config_).drain_timeout + std::chrono::seconds(5);
  for (auto& a : attention_) a->stop(SIGTERM, grace);
  for (auto& m : mtp_) m->stop(SIGTERM, grace);
  for (auto& h : hosts_) h->stop(SIGTERM, grace);
  if (router_) router_->stop(SIGTERM, grace);
  attention_.clear();
  mtp_.clear();
  hosts_.clear();
  router_.reset();
}

}  // namespace moemesh
