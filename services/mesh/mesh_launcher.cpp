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
  AttentionOptions a = c_.attention;
  a.router = router;
  if (c_.mtp_enabled && mc.num_nextn_predict_layers > 0) {
    say("mtp-draft: loading the MTP layer");
    MtpDraftOptions m = c_.mtp;
    m.router = router;
    mtp_ = std::make_unique<MtpDraftService>(m, ctx_);
    ep.mtp = mtp_->start();
    a.mtp = c_.mtp_connect == c_.mtp.bind ? ep.mtp : c_.mtp_connect;
  } else {
    a.mtp.clear();
  }
  say("attention: loading embeddings, attention layers and the LM head");
  attention_ = std::make_unique<AttentionService>(a, ctx_);
  ep.attention = attention_->start();
  for (const std::string& url : {router_->metrics_url(), attention_->metrics_url(), mtp_ ? mtp_->metrics_url() : std::string()})
    if (!url.empty()) ep.metrics.push_back(url);
  for (const auto& h : hosts_)
    if (!h->metrics_url().empty()) ep.metrics.push_back(h->metrics_url());
  return ep;
}

void InProcessMesh::stop() {
  // Clients first, so no role waits on one already gone.
  if (attention_) attention_->drain(c_.drain_timeout);
  if (attention_) attention_->stop();
  if (mtp_) mtp_->stop();
  for (auto& h : hosts_) h->stop();
  if (router_) router_->stop();
  attention_.reset();
  mtp_.reset();
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
  std::vector<std::string> attn{"serve", "attention", "--config", cfg, "--set", set_router};
  const ModelConfig mc = ModelConfig::load(config_.value("model", std::string()));
  if (config_["mtp_draft"].value("enabled", true) && mc.num_nextn_predict_layers > 0) {
    say("mtp-draft: starting");
    mtp_args_ = {"serve", "mtp-draft", "--config", cfg, "--set", set_router};
    mtp_ = spawn(mtp_args_, &ep_.mtp);
    attn.insert(attn.end(), {"--set", "mtp_draft.connect=" + ep_.mtp});
  } else {
    attn.insert(attn.end(), {"--set", "mtp_draft.enabled=false"});
  }
  say("attention: starting");
  attention_ = spawn(attn, &ep_.attention);
  return ep_;
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

ChildProcess& ProcessMesh::restart_mtp() {
  if (!mtp_) throw std::logic_error("this mesh has no mtp-draft role");
  mtp_->stop(SIGKILL);
  std::string ep;
  mtp_ = spawn(with_bind(mtp_args_, ep_.mtp), &ep);
  if (ep != ep_.mtp) throw std::runtime_error("mtp-draft came back on " + ep + ", not " + ep_.mtp);
  return *mtp_;
}

ChildProcess& ProcessMesh::restart_expert_host(size_t i) {
  hosts_.at(i)->stop(SIGKILL);
  hosts_[i] = spawn(host_args_.at(i), &ep_.expert_hosts.at(i));
  return *hosts_[i];
}

void ProcessMesh::stop() {
  // Front to back, each given its drain time: SIGKILL only for a role that hangs.
  const auto grace = ClusterConfig::from_json(config_).drain_timeout + std::chrono::seconds(5);
  if (attention_) attention_->stop(SIGTERM, grace);
  if (mtp_) mtp_->stop(SIGTERM, grace);
  for (auto& h : hosts_) h->stop(SIGTERM, grace);
  if (router_) router_->stop(SIGTERM, grace);
  attention_.reset();
  mtp_.reset();
  hosts_.clear();
  router_.reset();
}

}  // namespace moemesh
