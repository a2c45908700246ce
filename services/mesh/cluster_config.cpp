#include "services/mesh/cluster_config.h"

#include <unistd.h>

#include <cctype>
#include <fstream>

#include "services/expert_host/expert_host.h"

namespace moemesh {

nlohmann::json ClusterConfig::defaults(const std::string& transport) {
  const bool tcp = transport == "tcp";
  auto addr = [&](const std::string& name) { return tcp ? std::string("tcp://127.0.0.1:0") : "inproc://moemesh-" + name; };
  return {
      {"model", ""},
      {"compute", "fast"},
      {"drain_timeout_ms", 30000},
      {"router", {{"bind", addr("router")}, {"dispatch", "bf16"}, {"deadline_ms", 2000}, {"heartbeat_timeout_ms", 3000},
                  {"rebalance_interval_s", 0}, {"rebalance_moves", 8}}},
      {"attention", {{"bind", addr("attention")}, {"activations", "bf16"}, {"kv_tokens", 16384}, {"kv_cache_dtype", "bf16"}, {"speculative", 2}, {"speculative_max_batch", 4},
                     {"step_tokens", 256}, {"max_running", 64}, {"micro_batches", 2}, {"max_waiting", 1024}, {"router_timeout_ms", 10000}}},
      {"mtp_draft", {{"enabled", true}, {"bind", addr("mtp-draft")}, {"kv_tokens", 65536}}},
      {"gateway", {{"host", "127.0.0.1"}, {"port", 8000}, {"api_keys", nlohmann::json::array()}, {"max_body_bytes", 1 << 20},
                   {"max_messages", 256}, {"max_tokens", 4096}, {"default_max_tokens", 256}, {"max_inflight", 256},
                   {"per_key_concurrency", 64}, {"idle_timeout_s", 120}, {"total_timeout_s", 600}}},
      {"expert_hosts", nlohmann::json::array({{{"name", "experts-0"}, {"bind", addr("experts-0")}, {"experts", "all"}},
                                              {{"name", "experts-1"}, {"bind", addr("experts-1")}, {"experts", "all"}}})},
  };
}

namespace {

template <class T>
T get(const nlohmann::json& o, const char* section, const char* key, T fallback) {
  if (!o.contains(key)) return fallback;
  try {
    return o.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument(std::string(section) + "." + key + " has the wrong type: " + o.at(key).dump());
  }
}

const nlohmann::json& section(const nlohmann::json& j, const char* name) {
  static const nlohmann::json empty = nlohmann::json::object();
  if (!j.contains(name)) return empty;
  if (!j.at(name).is_object()) throw std::invalid_argument(std::string(name) + " must be an object");
  return j.at(name);
}

void check_address(const std::string& a, const std::string& field) {
  if (a.rfind("tcp://", 0) != 0 && a.rfind("ipc://", 0) != 0 && a.rfind("inproc://", 0) != 0)
    throw std::invalid_argument(field + " must be a tcp://, ipc:// or inproc:// address, not '" + a + "'");
}

std::chrono::milliseconds positive_ms(int64_t v, const std::string& field) {
  if (v <= 0) throw std::invalid_argument(field + " must be > 0");
  return std::chrono::milliseconds(v);
}

}  // namespace

ClusterConfig ClusterConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("the cluster config must be a JSON object");
  ClusterConfig c;
  c.model = get<std::string>(j, "config", "model", "");
  c.drain_timeout = positive_ms(get<int64_t>(j, "config", "drain_timeout_ms", 30000), "drain_timeout_ms");
  const std::string compute = get<std::string>(j, "config", "compute", "fast");
  const auto precision = cpu::precision_from_name(compute);
  if (!precision) throw std::invalid_argument("compute must be \"exact\" or \"fast\", not '" + compute + "'");
  auto kv_dtype = [](const nlohmann::json& sec, const char* name, const std::string& fallback) {
    const std::string v = get<std::string>(sec, name, "kv_cache_dtype", fallback);
    const auto t = kv_cache_dtype_from_name(v);
    if (!t) throw std::invalid_argument(std::string(name) + ".kv_cache_dtype must be f32, bf16 or fp8, not '" + v + "'");
    return *t;
  };

  const auto& r = section(j, "router");
  c.router.model = c.model;
  c.router.bind = get<std::string>(r, "router", "bind", "tcp://127.0.0.1:0");
  check_address(c.router.bind, "router.bind");
  c.router_connect = get<std::string>(r, "router", "connect", c.router.bind);
  c.router.dispatch = parse_wire_activations(get<std::string>(r, "router", "dispatch", "bf16"));
  c.router.deadline = positive_ms(get<int64_t>(r, "router", "deadline_ms", 2000), "router.deadline_ms");
  c.router.heartbeat_timeout = positive_ms(get<int64_t>(r, "router", "heartbeat_timeout_ms", 3000), "router.heartbeat_timeout_ms");
  const double rb = get<double>(r, "router", "rebalance_interval_s", 0.0);
  if (rb < 0) throw std::invalid_argument("router.rebalance_interval_s must be >= 0");
  c.router.rebalance_interval = std::chrono::milliseconds(static_cast<int64_t>(rb * 1000));
  c.router.rebalance_moves = get<int>(r, "router", "rebalance_moves", 8);
  c.router.metrics = get<std::string>(r, "router", "metrics", "");
  c.router.metrics_per_layer = get<bool>(r, "router", "metrics_per_layer", false);

  const auto& m = section(j, "mtp_draft");
  c.mtp_enabled = get<bool>(m, "mtp_draft", "enabled", true);
  c.mtp.model = c.model;
  c.mtp.bind = get<std::string>(m, "mtp_draft", "bind", "tcp://127.0.0.1:0");
  check_address(c.mtp.bind, "mtp_draft.bind");
  c.mtp_connect = get<std::string>(m, "mtp_draft", "connect", c.mtp.bind);
  c.mtp.router = c.router_connect;
  c.mtp.kv_tokens = get<int64_t>(m, "mtp_draft", "kv_tokens", 65536);
  if (c.mtp.kv_tokens < 64) throw std::invalid_argument("mtp_draft.kv_tokens must be >= 64");
  c.mtp.metrics = get<std::string>(m, "mtp_draft", "metrics", "");
  c.mtp.compute = *precision;

  const auto& a = section(j, "attention");
  c.attention.model = c.model;
  c.attention.bind = get<std::string>(a, "attention", "bind", "tcp://127.0.0.1:0");
  check_address(c.attention.bind, "attention.bind");
  c.attention_connect = get<std::string>(a, "attention", "connect", c.attention.bind);
  c.attention.router = c.router_connect;
  c.attention.mtp = c.mtp_enabled ? c.mtp_connect : "";
  c.attention.activations = parse_wire_activations(get<std::string>(a, "attention", "activations", "bf16"));
  c.mtp.activations = c.attention.activations;
  c.attention.kv_tokens = get<int64_t>(a, "attention", "kv_tokens", 16384);
  c.attention.kv_dtype = kv_dtype(a, "attention", "bf16");
  c.attention.compute = *precision;
  // The draft's own cache follows the attention role's unless set.
  c.mtp.kv_dtype = kv_dtype(m, "mtp_draft", kv_cache_dtype_name(c.attention.kv_dtype));
  if (c.attention.kv_tokens < 64) throw std::invalid_argument("attention.kv_tokens must be >= 64");
  c.attention.speculative = get<int>(a, "attention", "speculative", 2);
  if (c.attention.speculative < 0 || c.attention.speculative > 16) throw std::invalid_argument("attention.speculative must be in 0..16");
  c.attention.scheduler.step_tokens = get<int64_t>(a, "attention", "step_tokens", 256);
  c.attention.scheduler.max_running = get<int64_t>(a, "attention", "max_running", 64);
  c.attention.scheduler.max_waiting = get<int64_t>(a, "attention", "max_waiting", 1024);
  if (c.attention.scheduler.step_tokens < 1 || c.attention.scheduler.max_running < 1 || c.attention.scheduler.max_waiting < 0)
    throw std::invalid_argument("attention.step_tokens and max_running must be >= 1, max_waiting >= 0");
  c.attention.scheduler.max_speculative_batch = get<int64_t>(a, "attention", "speculative_max_batch", 4);
  c.attention.micro_batches = get<int>(a, "attention", "micro_batches", 2);
  c.attention.metrics = get<std::string>(a, "attention", "metrics", "");
  if (c.attention.micro_batches < 1 || c.attention.micro_batches > 2) throw std::invalid_argument("attention.micro_batches must be 1 or 2");
  c.attention.router_timeout = positive_ms(get<int64_t>(a, "attention", "router_timeout_ms", 10000), "attention.router_timeout_ms");
  c.mtp.router_timeout = c.attention.router_timeout;

  const auto& g = section(j, "gateway");
  GatewayOptions& go = c.gateway;
  go.host = get<std::string>(g, "gateway", "host", go.host);
  const int64_t port = get<int64_t>(g, "gateway", "port", go.port);
  if (port < 0 || port > 65535) throw std::invalid_argument("gateway.port must be 0..65535");
  go.port = static_cast<uint16_t>(port);
  go.api_keys = get<std::vector<std::string>>(g, "gateway", "api_keys", {});
  auto positive = [&](const char* key, int64_t fallback) {
    const int64_t v = get<int64_t>(g, "gateway", key, fallback);
    if (v < 1) throw std::invalid_argument(std::string("gateway.") + key + " must be >= 1");
    return v;
  };
  go.max_body_bytes = static_cast<size_t>(positive("max_body_bytes", static_cast<int64_t>(go.max_body_bytes)));
  go.limits.max_messages = static_cast<size_t>(positive("max_messages", static_cast<int64_t>(go.limits.max_messages)));
  go.limits.max_tokens = positive("max_tokens", go.limits.max_tokens);
  go.limits.default_max_tokens = std::min(positive("default_max_tokens", go.limits.default_max_tokens), go.limits.max_tokens);
  go.max_inflight = static_cast<size_t>(positive("max_inflight", static_cast<int64_t>(go.max_inflight)));
  go.per_key_concurrency = static_cast<size_t>(std::max<int64_t>(0, get<int64_t>(g, "gateway", "per_key_concurrency", 64)));
  go.idle_timeout_s = static_cast<int>(positive("idle_timeout_s", go.idle_timeout_s));
  go.total_timeout_s = static_cast<int>(positive("total_timeout_s", go.total_timeout_s));

  if (j.contains("expert_hosts")) {
    if (!j["expert_hosts"].is_array()) throw std::invalid_argument("expert_hosts must be an array");
    for (size_t i = 0; i < j["expert_hosts"].size(); ++i) {
      const auto& h = j["expert_hosts"][i];
      const std::string where = "expert_hosts[" + std::to_string(i) + "]";
      if (!h.is_object()) throw std::invalid_argument(where + " must be an object");
      ExpertHostConfig e;
      e.options.model = c.model;
      e.options.name = get<std::string>(h, where.c_str(), "name", "experts-" + std::to_string(i));
      e.options.bind = get<std::string>(h, where.c_str(), "bind", "tcp://127.0.0.1:0");
      check_address(e.options.bind, where + ".bind");
      e.options.router = c.router_connect;
      e.options.capacity = get<int64_t>(h, where.c_str(), "capacity", -1);
      e.options.metrics = get<std::string>(h, where.c_str(), "metrics", "");
      e.options.device = get<std::string>(h, where.c_str(), "device", "cpu");
      e.options.compute = *precision;
      if (e.options.device != "cpu" && e.options.device != "cuda")
        throw std::invalid_argument(where + ".device must be cpu or cuda");
      e.experts = get<std::string>(h, where.c_str(), "experts", "all");
      c.expert_hosts.push_back(std::move(e));
    }
  }
  return c;
}

void apply_override(nlohmann::json& j, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw std::invalid_argument("'" + assignment + "' is not KEY=VALUE");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    value = text;
  }
  nlohmann::json* at = &j;
  size_t start = 0;
  for (;;) {
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw std::invalid_argument("'" + key + "' has an empty part");
    if (at->is_array()) {
      size_t idx = 0;
      try {
        idx = std::stoul(part);
      } catch (const std::exception&) {
        throw std::invalid_argument("'" + key + "': '" + part + "' is not an index");
      }
      if (idx >= at->size()) throw std::invalid_argument("'" + key + "': index " + part + " is out of range");
      at = &(*at)[idx];
    } else {
      if (!at->is_object()) *at = nlohmann::json::object();
      at = &(*at)[part];
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  *at = value;
}

void apply_env_overrides(nlohmann::json& j, char** env) {
  const std::string prefix = "MOEMESH__";
  for (char** e = env; e && *e; ++e) {
    const std::string s = *e;
    if (s.rfind(prefix, 0) != 0) continue;
    const size_t eq = s.find('=');
    if (eq == std::string::npos) continue;
    std::string key;
    for (size_t i = prefix.size(); i < eq; ++i) {
      if (s.compare(i, 2, "__") == 0) {
        key += '.';
        ++i;
      } else {
        key += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
      }
    }
    apply_override(j, key + "=" + s.substr(eq + 1));
  }
}

nlohmann::json load_cluster_json(const std::string& file, const std::vector<std::string>& sets, const std::string& transport) {
  nlohmann::json j = ClusterConfig::defaults(transport);
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) throw std::invalid_argument("cannot open the cluster config " + file);
    try {
      const nlohmann::json f = nlohmann::json::parse(in);
      if (!f.is_object()) throw std::invalid_argument(file + ": the cluster config must be a JSON object");
      // A file's expert_hosts replace the defaults' rather than merging by index.
      j.merge_patch(f);
      if (f.contains("expert_hosts")) j["expert_hosts"] = f["expert_hosts"];
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(file + ": invalid JSON: " + e.what());
    }
  }
  apply_env_overrides(j, ::environ);
  for (const auto& s : sets) apply_override(j, s);
  return j;
}

std::vector<int32_t> resolve_experts(const std::string& spec, int32_t n_experts) {
  if (spec == "all") {
    std::vector<int32_t> all(n_experts);
    for (int32_t i = 0; i < n_experts; ++i) all[i] = i;
    return all;
  }
  if (spec == "none" || spec.empty()) return {};
  return parse_id_ranges(spec, n_experts);
}

}  // namespace moemesh
