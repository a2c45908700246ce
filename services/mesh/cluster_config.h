// The cluster config: one JSON file naming the model, every role's address and
// options, and which experts each expert host holds (docs/MESH.md). Values come
// from the option structs' defaults, then the file, then MOEMESH__* environment
// variables, then --set flags (later wins). Every section is read by its list
// of fields (cluster_config.cpp); a key no field has is refused, naming it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "services/attention/api.h"
#include "services/expert_host/api.h"
#include "services/gateway/api.h"
#include "services/mtp_draft/api.h"
#include "services/router/api.h"

namespace moemesh {

struct ExpertHostConfig {
  ExpertHostOptions options;
  std::string experts = "all";  // "all", "none" (join: the router assigns) or ranges "0-127,200"
};

struct ClusterConfig {
  std::string model;
  cpu::Precision compute = cpu::Precision::Fast;  // every role that computes
  // SIGTERM: how long a role may take to finish the work it had accepted.
  std::chrono::milliseconds drain_timeout{30000};
  RouterOptions router;
  std::string router_connect;  // where the other roles reach the router (default: its bind)
  DispatcherOptions dispatch;  // every dispatcher's (attention and mtp-draft; each has its own zone)
  AttentionOptions attention;
  std::string attention_connect;  // where the gateway reaches attention (default: its bind; "router": only through the router)
  int64_t attention_replicas = 1;  // how many the launchers start
  // The gateway's view of the attention tier: attention_connect's endpoints and the router.
  GatewayUpstream gateway_upstream() const;
  bool mtp_enabled = true;
  MtpDraftOptions mtp;
  std::string mtp_connect;
  std::optional<KvCacheDtype> mtp_kv_dtype;  // unset: the attention role's
  std::vector<ExpertHostConfig> expert_hosts;
  GatewayOptions gateway;
  // CURVE between roles (docs/SECURITY.md): "auto" (on in `moemesh up
  // --processes`, with keys made for the run; off elsewhere, with a warning
  // over tcp), "on" (keys from `security_keys`), "off".
  std::string curve = "auto";
  std::string curve_keys;  // the keyring folder (moemesh keygen)

  // Built-in defaults: every role on inproc:// ("inproc") or tcp loopback with
  // free ports ("tcp"), two expert hosts holding every expert.
  static nlohmann::json defaults(const std::string& transport);
  // Throws std::invalid_argument naming the field.
  static ClusterConfig from_json(const nlohmann::json& j);
  // Every section's keys, defaults and meanings as markdown tables (docs/MESH.md holds them).
  static std::string reference();
};

// Applies "a.b.c=value" (value parsed as JSON, else taken as a string).
void apply_override(nlohmann::json& j, const std::string& assignment);
// MOEMESH__ROUTER__HEARTBEAT_TIMEOUT_MS=500 → router.heartbeat_timeout_ms = 500.
void apply_env_overrides(nlohmann::json& j, char** environ);
// Defaults ← file (if any) ← environment ← `sets`.
nlohmann::json load_cluster_json(const std::string& file, const std::vector<std::string>& sets,
                                 const std::string& transport = "inproc");

// "a,b" -> {"a", "b"} (blanks dropped).
std::vector<std::string> split_endpoints(const std::string& list);
// The i-th of several roles from one section: inproc://x -> inproc://x-i, a fixed
// tcp or metrics port p -> p+i (port 0 stays 0: each picks its own).
std::string nth_endpoint(const std::string& endpoint, size_t i);

// Expert ids from a host's spec for a model with n experts.
std::vector<int32_t> resolve_experts(const std::string& spec, int32_t n_experts);

}  // namespace moemesh
