#include "services/mesh/cluster_config.h"

#include <unistd.h>

#include <cctype>
#include <fstream>
#include <functional>

#include "services/mesh/config_fields.h"

namespace moemesh {

namespace {

using config::Field;
using config::Fields;
using C = ClusterConfig;

std::optional<WireActivations> activations_named(const std::string& s) { return wire_activations_from_name(s); }
std::string activations_name(WireActivations w) { return wire_activations_name(w); }
std::optional<KvCacheDtype> kv_named(const std::string& s) { return kv_cache_dtype_from_name(s); }
std::string kv_name(KvCacheDtype t) { return kv_cache_dtype_name(t); }
std::optional<cpu::Precision> precision_named(const std::string& s) { return cpu::precision_from_name(s); }
std::string precision_name(cpu::Precision p) { return cpu::precision_name(p); }

const Fields<C>& top_fields() {
  static const Fields<C> f = {
      config::text<C>("model", [](C& c) -> auto& { return c.model; }, "checkpoint directory (safetensors and config.json)"),
      config::choice<C>("compute", [](C& c) -> auto& { return c.compute; },
                        "products of every role: `fast` (bf16 dot products where the CPU has them) or `exact` (f32)",
                        std::function<std::optional<cpu::Precision>(const std::string&)>(precision_named),
                        std::function<std::string(cpu::Precision)>(precision_name), "exact or fast"),
      config::millis<C>("drain_timeout_ms", [](C& c) -> auto& { return c.drain_timeout; },
                        "after SIGTERM, how long a role may take to finish the work it accepted"),
  };
  return f;
}

const Fields<C>& router_fields() {
  static const Fields<C> f = {
      config::text<C>("bind", [](C& c) -> auto& { return c.router.bind; }, "where the router listens", config::check_address),
      config::text<C>("connect", [](C& c) -> auto& { return c.router_connect; },
                      "where the other roles reach it (empty: its bind)",
                      [](const std::string& a) { if (!a.empty()) config::check_address(a); }),
      config::millis<C>("heartbeat_timeout_ms", [](C& c) -> auto& { return c.router.heartbeat_timeout; },
                        "an expert host silent this long is taken out (a closed connection takes it out at once)"),
      config::seconds<C>("rebalance_interval_s", [](C& c) -> auto& { return c.router.rebalance_interval; },
                         "rebalance experts from measured load this often (0: only on the `rebalance` command)"),
      config::integer<C>("rebalance_moves", [](C& c) -> auto& { return c.router.rebalance_moves; },
                         "expert loads and unloads per rebalance, at most", 0, 4096),
      config::millis<C>("replica_timeout_ms", [](C& c) -> auto& { return c.router.replica_timeout; },
                        "an attention replica silent this long leaves the list gateways get"),
      config::text<C>("metrics", [](C& c) -> auto& { return c.router.metrics; }, "Prometheus address, e.g. 127.0.0.1:9101 (empty: none)"),
  };
  return f;
}

const Fields<C>& dispatch_fields() {
  static const Fields<C> f = {
      config::choice<C>("activations", [](C& c) -> auto& { return c.dispatch.activations; },
                        "hidden states to the expert hosts: f32, bf16 or fp8 (answers come back in f32 for f32, else bf16)",
                        std::function<std::optional<WireActivations>(const std::string&)>(activations_named),
                        std::function<std::string(WireActivations)>(activations_name), "f32, bf16 or fp8"),
      config::number<C>("deadline_percentile", [](C& c) -> auto& { return c.dispatch.deadline_percentile; },
                        "a dispatch's deadline is this quantile of the host's measured latency ...", 0.5, 1.0),
      config::number<C>("deadline_factor", [](C& c) -> auto& { return c.dispatch.deadline_factor; }, "... times this ...", 1.0, 1000.0),
      config::millis<C>("deadline_floor_ms", [](C& c) -> auto& { return c.dispatch.deadline_floor; },
                        "... and never less than this; past it the work is hedged on a replica"),
      config::millis<C>("max_wait_ms", [](C& c) -> auto& { return c.dispatch.max_wait; },
                        "work with no usable replica waits this long before its requests fail"),
      config::millis<C>("link_heartbeat_ms", [](C& c) -> auto& { return c.dispatch.link_heartbeat; },
                        "ZMTP heartbeat on every connection to an expert host"),
      config::millis<C>("link_timeout_ms", [](C& c) -> auto& { return c.dispatch.link_timeout; },
                        "a connection whose peer is silent this long is dropped (its work goes to replicas)"),
      config::integer<C>("zone_overload_rows", [](C& c) -> auto& { return c.dispatch.zone_overload_rows; },
                         "another zone's replica is used when the own zone's best has this many rows outstanding (and twice the other's)",
                         0),
  };
  return f;
}

const Fields<C>& attention_fields() {
  static const Fields<C> f = {
      config::text<C>("bind", [](C& c) -> auto& { return c.attention.bind; }, "where the attention role listens", config::check_address),
      config::text<C>("connect", [](C& c) -> auto& { return c.attention_connect; },
                      "where the gateway reaches it: endpoints separated by commas (empty: its bind; `router`: only the replicas the router lists)",
                      [](const std::string& a) {
                        if (a != "router")
                          for (const auto& e : split_endpoints(a)) config::check_address(e);
                      }),
      config::integer<C>("replicas", [](C& c) -> auto& { return c.attention_replicas; },
                         "attention replicas `moemesh up` starts (each with its own KV cache, scheduler and mtp-draft)", 1, 64),
      config::text<C>("name", [](C& c) -> auto& { return c.attention.name; },
                      "its name among the replicas (with replicas > 1, `up` numbers them: name-0, name-1, ...)"),
      config::text<C>("advertise", [](C& c) -> auto& { return c.attention.advertise; },
                      "where gateways dial it, as it reports to the router (empty: its bind)",
                      [](const std::string& a) { if (!a.empty()) config::check_address(a); }),
      config::text<C>("zone", [](C& c) -> auto& { return c.attention.dispatch.zone; }, "its zone: expert hosts of the same zone are preferred"),
      config::integer<C>("kv_tokens", [](C& c) -> auto& { return c.attention.kv_tokens; }, "latent KV cache size in tokens", 64),
      config::choice<C>("kv_cache_dtype", [](C& c) -> auto& { return c.attention.kv_dtype; }, "latent KV cache element type: f32, bf16 or fp8",
                        std::function<std::optional<KvCacheDtype>(const std::string&)>(kv_named),
                        std::function<std::string(KvCacheDtype)>(kv_name), "f32, bf16 or fp8"),
      config::boolean<C>("prefix_cache", [](C& c) -> auto& { return c.attention.prefix_cache; },
                         "reuse the KV cache pages of prompt prefixes earlier requests computed"),
      config::integer<C>("speculative", [](C& c) -> auto& { return c.attention.speculative; },
                         "the most MTP drafts per decode step (0: no speculation)", 0, 16),
      config::boolean<C>("speculative_adaptive", [](C& c) -> auto& { return c.attention.scheduler.adaptive_speculation; },
                         "draft per request only as many tokens as pay, from measured acceptance and the tokens per second each draft length delivered (false: always `speculative`)"),
      config::integer<C>("speculative_max_batch", [](C& c) -> auto& { return c.attention.scheduler.max_speculative_batch; },
                         "speculate only while at most this many requests decode", 0),
      config::integer<C>("step_tokens", [](C& c) -> auto& { return c.attention.scheduler.step_tokens; },
                         "prefill and decode tokens per engine step", 1),
      config::integer<C>("max_running", [](C& c) -> auto& { return c.attention.scheduler.max_running; }, "requests in the running batch", 1),
      config::integer<C>("max_waiting", [](C& c) -> auto& { return c.attention.scheduler.max_waiting; },
                         "queued requests beyond which new ones are refused (HTTP 429)", 0),
      config::integer<C>("micro_batches", [](C& c) -> auto& { return c.attention.micro_batches; },
                         "micro-batches in flight per step (2: attention computes one while the experts run the other)", 1, 2),
      config::boolean<C>("metrics_per_layer", [](C& c) -> auto& { return c.attention.metrics_per_layer; },
                         "also count rows per expert of every MoE layer (layers × experts series)"),
      config::text<C>("metrics", [](C& c) -> auto& { return c.attention.metrics; }, "Prometheus address (empty: none)"),
  };
  return f;
}

std::optional<std::optional<KvCacheDtype>> mtp_kv_named(const std::string& s) {
  if (s == "attention") return std::optional<KvCacheDtype>{};
  if (auto t = kv_cache_dtype_from_name(s)) return std::optional<KvCacheDtype>{*t};
  return std::nullopt;
}
std::string mtp_kv_name(std::optional<KvCacheDtype> t) { return t ? kv_cache_dtype_name(*t) : "attention"; }

const Fields<C>& mtp_fields() {
  static const Fields<C> f = {
      config::boolean<C>("enabled", [](C& c) -> auto& { return c.mtp_enabled; }, "run the mtp-draft role (speculative decoding)"),
      config::text<C>("bind", [](C& c) -> auto& { return c.mtp.bind; }, "where the mtp-draft role listens", config::check_address),
      config::text<C>("connect", [](C& c) -> auto& { return c.mtp_connect; }, "where attention reaches it (empty: its bind)",
                      [](const std::string& a) { if (!a.empty()) config::check_address(a); }),
      config::text<C>("zone", [](C& c) -> auto& { return c.mtp.dispatch.zone; }, "its zone, for the MTP layer's experts"),
      config::integer<C>("kv_tokens", [](C& c) -> auto& { return c.mtp.kv_tokens; }, "the MTP layer's latent cache in tokens", 64),
      config::choice<C>("kv_cache_dtype", [](C& c) -> auto& { return c.mtp_kv_dtype; },
                        "its cache element type: f32, bf16, fp8 or `attention` (the attention role's)",
                        std::function<std::optional<std::optional<KvCacheDtype>>(const std::string&)>(mtp_kv_named),
                        std::function<std::string(std::optional<KvCacheDtype>)>(mtp_kv_name), "f32, bf16, fp8 or attention"),
      config::text<C>("metrics", [](C& c) -> auto& { return c.mtp.metrics; }, "Prometheus address (empty: none)"),
  };
  return f;
}

const Fields<C>& gateway_fields() {
  static const Fields<C> f = {
      config::text<C>("host", [](C& c) -> auto& { return c.gateway.host; }, "address the HTTP server listens on"),
      config::integer<C>("port", [](C& c) -> auto& { return c.gateway.port; }, "its port (0: any free port)", 0, 65535),
      config::strings<C>("api_keys", [](C& c) -> auto& { return c.gateway.api_keys; },
                         "bearer keys it accepts, in clear (with api_key_digests empty: no authentication)"),
      config::strings<C>("api_key_digests", [](C& c) -> auto& { return c.gateway.api_key_digests; },
                         "bearer keys it accepts as sha256:HEX digests of them (sha256sum), the keys kept elsewhere"),
      config::text<C>("tls_cert", [](C& c) -> auto& { return c.gateway.tls_cert; },
                      "PEM certificate chain: HTTPS and WSS, loaded again on SIGHUP (empty: plain HTTP)"),
      config::text<C>("tls_key", [](C& c) -> auto& { return c.gateway.tls_key; }, "PEM private key of tls_cert"),
      config::boolean<C>("hsts", [](C& c) -> auto& { return c.gateway.hsts; }, "with TLS: send Strict-Transport-Security"),
      config::integer<C>("max_body_bytes", [](C& c) -> auto& { return c.gateway.max_body_bytes; }, "largest request body (HTTP 413 beyond)", 1),
      config::integer<C>("max_messages", [](C& c) -> auto& { return c.gateway.limits.max_messages; }, "messages per chat request", 1),
      config::integer<C>("max_tokens", [](C& c) -> auto& { return c.gateway.limits.max_tokens; }, "largest max_tokens a request may ask", 1),
      config::integer<C>("default_max_tokens", [](C& c) -> auto& { return c.gateway.limits.default_max_tokens; },
                         "max_tokens when a request gives none (at most max_tokens)", 1),
      config::integer<C>("max_inflight", [](C& c) -> auto& { return c.gateway.max_inflight; }, "generations at once (HTTP 429 beyond)", 1),
      config::integer<C>("per_key_concurrency", [](C& c) -> auto& { return c.gateway.per_key_concurrency; },
                         "generations at once per API key (0: no limit)", 0),
      config::integer<C>("idle_timeout_s", [](C& c) -> auto& { return c.gateway.idle_timeout_s; }, "an idle connection is closed after this", 1),
      config::integer<C>("total_timeout_s", [](C& c) -> auto& { return c.gateway.total_timeout_s; },
                         "a generation running longer is stopped (HTTP 504)", 1),
      config::text<C>("model_name", [](C& c) -> auto& { return c.gateway.model_name; }, "the model's name in the API (empty: the checkpoint directory's)"),
      config::text<C>("tool_parser", [](C& c) -> auto& { return c.gateway.tool_parser; },
                      "how the model writes tool calls: deepseek_v3, deepseek_v31 or auto (the checkpoint's)",
                      [](const std::string& v) {
                        if (v != "auto" && v != "deepseek_v3" && v != "deepseek_v31")
                          throw std::invalid_argument("must be auto, deepseek_v3 or deepseek_v31, not '" + v + "'");
                      }),
      config::text<C>("reasoning", [](C& c) -> auto& { return c.gateway.reasoning; },
                      "<think> blocks as reasoning_content: on, off or auto (on when the chat template opens one, as R1's)",
                      [](const std::string& v) {
                        if (v != "auto" && v != "on" && v != "off") throw std::invalid_argument("must be auto, on or off, not '" + v + "'");
                      }),
      config::text<C>("routing", [](C& c) -> auto& { return c.gateway.routing; },
                      "which attention replica a request goes to: cache_aware (the one holding its longest prefix unless overloaded), least_load or round_robin",
                      [](const std::string& v) {
                        if (v != "cache_aware" && v != "least_load" && v != "round_robin")
                          throw std::invalid_argument("must be cache_aware, least_load or round_robin, not '" + v + "'");
                      }),
      config::integer<C>("balance_abs", [](C& c) -> auto& { return c.gateway.balance_abs; },
                         "cache_aware: the replica holding the prefix is passed over when it has this many more requests than the least loaded ...", 0),
      config::number<C>("balance_rel", [](C& c) -> auto& { return c.gateway.balance_rel; }, "... and this many times as many", 1.0, 1000.0),
      config::integer<C>("stall_floor_ms", [](C& c) -> auto& { return c.gateway.stall_floor_ms; },
                         "a replica that leaves a stats question unanswered this long (or 8 times its recent round trip) is hung: its streams resume elsewhere", 100),
      config::integer<C>("replica_wait_ms", [](C& c) -> auto& { return c.gateway.replica_wait_ms; },
                         "a request waits this long for a usable attention replica before it fails (HTTP 503)", 0),
  };
  return f;
}

const Fields<ExpertHostConfig>& host_fields() {
  using H = ExpertHostConfig;
  static const Fields<H> f = {
      config::text<H>("name", [](H& h) -> auto& { return h.options.name; }, "unique in the mesh"),
      config::text<H>("bind", [](H& h) -> auto& { return h.options.bind; }, "where it listens", config::check_address),
      config::text<H>("advertise", [](H& h) -> auto& { return h.options.advertise; },
                      "where dispatchers and the router dial it (empty: its bind)",
                      [](const std::string& a) { if (!a.empty()) config::check_address(a); }),
      config::text<H>("zone", [](H& h) -> auto& { return h.options.zone; }, "its zone (Helm: the node's topology.kubernetes.io/zone)"),
      config::text<H>("experts", [](H& h) -> auto& { return h.experts; }, "held from the start: all, none (the router assigns) or ranges 0-127,200"),
      config::integer<H>("capacity", [](H& h) -> auto& { return h.options.capacity; }, "experts it may hold (-1: all)", -1),
      config::millis<H>("heartbeat_ms", [](H& h) -> auto& { return h.options.heartbeat; }, "how often it reports to the router"),
      config::text<H>("device", [](H& h) -> auto& { return h.options.device; }, "where its experts compute: cpu or cuda",
                      [](const std::string& d) {
                        if (d != "cpu" && d != "cuda") throw std::invalid_argument("must be cpu or cuda, not '" + d + "'");
                      }),
      config::text<H>("metrics", [](H& h) -> auto& { return h.options.metrics; }, "Prometheus address (empty: none)"),
  };
  return f;
}

const Fields<C>& security_fields() {
  static const Fields<C> f = {
      config::text<C>("curve", [](C& c) -> auto& { return c.curve; },
                      "CURVE on mesh connections: on, off, or auto (on in `up --processes` with keys made for the run)",
                      [](const std::string& v) {
                        if (v != "auto" && v != "on" && v != "off") throw std::invalid_argument("must be auto, on or off, not '" + v + "'");
                      }),
      config::text<C>("keys", [](C& c) -> auto& { return c.curve_keys; }, "the keyring folder (`moemesh keygen` makes one)"),
  };
  return f;
}

struct Section {
  const char* name;
  const Fields<C>& (*fields)();
};
const Section kSections[] = {{"router", router_fields},       {"dispatch", dispatch_fields}, {"attention", attention_fields},
                             {"mtp_draft", mtp_fields},        {"gateway", gateway_fields},   {"security", security_fields}};

// Keys of older configs, and where their meaning went.
const std::pair<const char*, const char*> kMoved[] = {
    {"router.dispatch", "dispatch.activations"},
    {"router.deadline_ms", "dispatch.deadline_floor_ms (deadlines follow measured latency now)"},
    {"router.metrics_per_layer", "attention.metrics_per_layer"},
    {"attention.activations", "dispatch.activations"},
    {"attention.router_timeout_ms", "dispatch.max_wait_ms"},
};

std::string with_transport(const std::string& transport, const std::string& name) {
  return transport == "tcp" ? std::string("tcp://127.0.0.1:0") : "inproc://moemesh-" + name;
}

}  // namespace

namespace config {
void check_address(const std::string& a) {
  if (a.rfind("tcp://", 0) != 0 && a.rfind("ipc://", 0) != 0 && a.rfind("inproc://", 0) != 0)
    throw std::invalid_argument("must be a tcp://, ipc:// or inproc:// address, not '" + a + "'");
}
}  // namespace config

nlohmann::json ClusterConfig::defaults(const std::string& transport) {
  const ClusterConfig d;
  nlohmann::json j = config::write(top_fields(), d);
  for (const Section& s : kSections) j[s.name] = config::write(s.fields(), d);
  j["router"]["bind"] = with_transport(transport, "router");
  j["attention"]["bind"] = with_transport(transport, "attention");
  j["mtp_draft"]["bind"] = with_transport(transport, "mtp-draft");
  j["expert_hosts"] = nlohmann::json::array();
  for (int i = 0; i < 2; ++i) {
    ExpertHostConfig h;
    h.options.name = "experts-" + std::to_string(i);
    h.options.bind = with_transport(transport, h.options.name);
    j["expert_hosts"].push_back(config::write(host_fields(), h));
  }
  return j;
}

std::string ClusterConfig::reference() {
  const ClusterConfig d;
  std::string s = config::reference(top_fields(), d, "(top level)");
  for (const Section& sec : kSections) s += "\n" + config::reference(sec.fields(), d, sec.name);
  ExpertHostConfig h;
  s += "\n" + config::reference(host_fields(), h, "expert_hosts[i]");
  return s;
}

ClusterConfig ClusterConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("the cluster config must be a JSON object");
  for (const auto& [from, to] : kMoved) {
    const std::string f = from;
    const auto dot = f.find('.');
    const std::string sec = f.substr(0, dot), key = f.substr(dot + 1);
    if (j.contains(sec) && j[sec].is_object() && j[sec].contains(key))
      throw std::invalid_argument(f + " is no longer an option: see " + to);
  }
  ClusterConfig c;
  nlohmann::json top = nlohmann::json::object();
  for (const auto& [k, v] : j.items()) {
    bool section = k == "expert_hosts";
    for (const Section& s : kSections) section |= k == s.name;
    if (!section) top[k] = v;
  }
  config::read(top_fields(), top, "config", c);
  for (const Section& s : kSections)
    if (j.contains(s.name)) config::read(s.fields(), j[s.name], s.name, c);
  c.gateway.limits.default_max_tokens = std::min(c.gateway.limits.default_max_tokens, c.gateway.limits.max_tokens);

  if (j.contains("expert_hosts")) {
    if (!j["expert_hosts"].is_array()) throw std::invalid_argument("expert_hosts must be an array");
    for (size_t i = 0; i < j["expert_hosts"].size(); ++i) {
      ExpertHostConfig h;
      h.options.name = "experts-" + std::to_string(i);
      const std::string where = "expert_hosts[" + std::to_string(i) + "]";
      config::read(host_fields(), j["expert_hosts"][i], where, h);
      if (!j["expert_hosts"][i].is_object()) throw std::invalid_argument(where + " must be an object");
      c.expert_hosts.push_back(std::move(h));
    }
  }

  // What follows from the rest: the model and compute everywhere, who reaches whom.
  if (c.router_connect.empty()) c.router_connect = c.router.bind;
  if (c.attention_connect.empty()) c.attention_connect = c.attention.bind;
  if (c.attention_replicas > 1 && c.attention_connect == c.attention.bind) c.attention_connect = "router";  // the launchers name each
  if (c.mtp_connect.empty()) c.mtp_connect = c.mtp.bind;
  c.router.model = c.attention.model = c.mtp.model = c.model;
  c.attention.compute = c.mtp.compute = c.compute;
  c.attention.router = c.mtp.router = c.router_connect;
  c.attention.mtp = c.mtp_enabled ? c.mtp_connect : "";
  const std::string attention_zone = c.attention.dispatch.zone, mtp_zone = c.mtp.dispatch.zone;
  c.attention.dispatch = c.dispatch;
  c.attention.dispatch.zone = attention_zone;
  c.mtp.dispatch = c.dispatch;
  c.mtp.dispatch.zone = mtp_zone;
  c.mtp.kv_dtype = c.mtp_kv_dtype.value_or(c.attention.kv_dtype);
  for (auto& h : c.expert_hosts) {
    h.options.model = c.model;
    h.options.router = c.router_connect;
    h.options.compute = c.compute;
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

std::vector<std::string> split_endpoints(const std::string& list) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= list.size()) {
    const size_t comma = std::min(list.find(',', at), list.size());
    std::string e = list.substr(at, comma - at);
    e.erase(0, e.find_first_not_of(' '));
    e.erase(e.find_last_not_of(' ') + 1);
    if (!e.empty()) out.push_back(e);
    at = comma + 1;
  }
  return out;
}

std::string nth_endpoint(const std::string& endpoint, size_t i) {
  if (i == 0 || endpoint.empty()) return endpoint;
  if (endpoint.rfind("inproc://", 0) == 0) return endpoint + "-" + std::to_string(i);
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) return endpoint;
  const std::string port = endpoint.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) return endpoint;
  const long p = std::stol(port);
  return p == 0 ? endpoint : endpoint.substr(0, colon + 1) + std::to_string(p + static_cast<long>(i));
}

GatewayUpstream ClusterConfig::gateway_upstream() const {
  GatewayUpstream u;
  if (attention_connect != "router") u.attention = split_endpoints(attention_connect);
  // A router bound to "any free port" has no address to dial from here.
  if (router_connect.size() < 2 || router_connect.compare(router_connect.size() - 2, 2, ":0") != 0) u.router = router_connect;
  return u;
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
