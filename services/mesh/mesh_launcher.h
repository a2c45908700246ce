// Starting a whole mesh on this machine: every role as actors in this process
// (InProcessMesh, inproc:// by default), or every role as its own `moemesh
// serve` process over tcp loopback (ProcessMesh). Both start the router first,
// then the expert hosts (and wait until every expert has a host), and then
// each attention replica (attention.replicas of them) after its own mtp-draft.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "services/mesh/child_process.h"
#include "services/mesh/cluster_config.h"

namespace moemesh {

struct MeshEndpoints {
  std::string router, attention, mtp;  // attention, mtp: the first replica's
  std::vector<std::string> attention_replicas, mtp_replicas;  // every one (an mtp-draft per replica)
  std::vector<std::string> expert_hosts;
  std::vector<std::string> metrics;  // Prometheus URLs of the roles that serve them (in-process mesh)
};

using Progress = std::function<void(const std::string&)>;

class InProcessMesh {
 public:
  InProcessMesh(ClusterConfig config, zmq::context_t& ctx);
  ~InProcessMesh();
  MeshEndpoints start(const Progress& progress = {});
  void stop();

 private:
  ClusterConfig c_;
  zmq::context_t& ctx_;
  std::unique_ptr<RouterService> router_;
  std::vector<std::unique_ptr<ExpertHostService>> hosts_;
  std::vector<std::unique_ptr<MtpDraftService>> mtp_;
  std::vector<std::unique_ptr<AttentionService>> attention_;
};

class ProcessMesh {
 public:
  // `binary`: the moemesh executable; `config`: the cluster JSON (inproc
  // addresses become tcp loopback ones); `workdir` holds the config the roles read.
  ProcessMesh(std::string binary, nlohmann::json config, std::filesystem::path workdir, zmq::context_t& ctx);
  ~ProcessMesh();
  MeshEndpoints start(const Progress& progress = {});
  void stop();

  // Starts one more expert host (experts: ids, "all" or "none" to be assigned).
  // `extra`: more `serve expert-host` arguments (--bind, --advertise …).
  ChildProcess& add_expert_host(const std::string& name, const std::string& experts, const std::vector<std::string>& extra = {});
  // Starts a role again after it died or was stopped (killing it first if it
  // still runs): the router and mtp-draft on the address they had, so their
  // clients reconnect; an expert host on a new port, under the same name.
  ChildProcess& restart_router();
  ChildProcess& restart_mtp(size_t i = 0);  // replica i's
  ChildProcess& restart_expert_host(size_t i);
  // Starts one more attention replica (with its own mtp-draft when the mesh
  // drafts) under `name`; it registers with the router, and gateways find it there.
  ChildProcess& add_attention(const std::string& name);
  // Starts replica i again (killing it first if it still runs) on a new port, under the same name.
  ChildProcess& restart_attention(size_t i);
  ChildProcess& expert_host(size_t i) { return *hosts_.at(i); }
  ChildProcess& router() { return *router_; }
  ChildProcess& attention(size_t i = 0) { return *attention_.at(i); }
  size_t attention_replicas() const { return attention_.size(); }
  ChildProcess* mtp(size_t i = 0) { return i < mtp_.size() ? mtp_[i].get() : nullptr; }
  const MeshEndpoints& endpoints() const { return ep_; }
  // The cluster config the roles read (its security.keys: the run's keyring under CURVE).
  const std::filesystem::path& config_file() const { return file_; }

 private:
  std::unique_ptr<ChildProcess> spawn(const std::vector<std::string>& args, std::string* endpoint);
  std::string binary_;
  nlohmann::json config_;
  std::filesystem::path file_;
  zmq::context_t& ctx_;
  MeshEndpoints ep_;
  std::unique_ptr<ChildProcess> router_;
  std::vector<std::unique_ptr<ChildProcess>> hosts_, mtp_, attention_;
  std::vector<std::string> router_args_;
  std::vector<std::vector<std::string>> host_args_, mtp_args_, attention_args_;
  bool drafts_ = false;  // the mesh runs an mtp-draft per attention replica
};

}  // namespace moemesh
