// The codecs of the router's protocol types (api.h): JSON with every field
// checked, so a bad message is refused naming the field.
#include <stdexcept>

#include "services/router/api.h"

namespace moemesh {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

const nlohmann::json& object(const nlohmann::json& j, const char* what) {
  if (!j.is_object()) bad(std::string(what) + " must be a JSON object");
  return j;
}
std::string string_field(const nlohmann::json& j, const char* key, bool required, const char* what) {
  if (!j.contains(key)) {
    if (required) bad(std::string(what) + " needs \"" + key + "\"");
    return "";
  }
  if (!j[key].is_string()) bad(std::string(what) + "." + key + " must be a string");
  return j[key].get<std::string>();
}
std::vector<int32_t> ids_field(const nlohmann::json& j, const char* key, int64_t limit, const char* what) {
  if (!j.contains(key)) return {};
  if (!j[key].is_array()) bad(std::string(what) + "." + key + " must be an array of expert ids");
  std::vector<int32_t> out;
  for (const auto& e : j[key]) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || (limit >= 0 && e.get<int64_t>() >= limit))
      bad(std::string(what) + "." + key + " has an invalid expert id " + e.dump());
    out.push_back(e.get<int32_t>());
  }
  return out;
}
uint64_t count_field(const nlohmann::json& j, const char* key, const char* what) {
  if (!j.contains(key)) return 0;
  if (!j[key].is_number_unsigned() && !(j[key].is_number_integer() && j[key].get<int64_t>() >= 0))
    bad(std::string(what) + "." + key + " must be a count");
  return j[key].get<uint64_t>();
}

}  // namespace

const char* host_state_name(HostState s) {
  switch (s) {
    case HostState::Ready: return "ready";
    case HostState::Draining: return "draining";
    case HostState::Dead: return "dead";
  }
  return "?";
}

const char* suspicion_reason_name(SuspicionReason r) { return r == SuspicionReason::Disconnect ? "disconnect" : "deadline"; }

nlohmann::json to_json(const HostReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [e, n] : r.expert_rows) rows.push_back({e, n});
  return {{"role", "expert-host"}, {"name", r.name},         {"endpoint", r.endpoint},     {"zone", r.zone},
          {"experts", r.experts},  {"capacity", r.capacity}, {"dispatches", r.dispatches}, {"rows", r.rows},
          {"expert_rows", rows}, {"generation", r.generation}};
}

HostReport host_report_from_json(const nlohmann::json& j, int64_t n_experts) {
  object(j, "a host report");
  HostReport r;
  r.name = string_field(j, "name", true, "a host report");
  r.endpoint = string_field(j, "endpoint", true, "a host report");
  r.zone = string_field(j, "zone", false, "a host report");
  if (!j.contains("experts")) bad("a host report needs \"experts\"");
  r.experts = ids_field(j, "experts", n_experts, "a host report");
  if (j.contains("capacity")) {
    if (!j["capacity"].is_number_integer()) bad("a host report's capacity must be an integer");
    r.capacity = j["capacity"].get<int64_t>();
  }
  r.dispatches = count_field(j, "dispatches", "a host report");
  r.rows = count_field(j, "rows", "a host report");
  r.generation = count_field(j, "generation", "a host report");
  if (j.contains("expert_rows")) {
    if (!j["expert_rows"].is_array()) bad("a host report's expert_rows must be [[expert, rows], ...]");
    for (const auto& p : j["expert_rows"]) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || p[0].get<int64_t>() < 0 ||
          p[0].get<int64_t>() >= n_experts || !p[1].is_number_unsigned())
        bad("a host report's expert_rows must be [[expert, rows], ...] with valid expert ids");
      r.expert_rows.emplace_back(p[0].get<int32_t>(), p[1].get<uint64_t>());
    }
  }
  return r;
}

nlohmann::json to_json(const HostCommand& c) {
  const char* cmd = c.kind == HostCommandKind::Load ? "load" : c.kind == HostCommandKind::Unload ? "unload" : "leave";
  nlohmann::json j{{"cmd", cmd}};
  if (c.kind != HostCommandKind::Leave) j["experts"] = c.experts;
  return j;
}

HostCommand host_command_from_json(const nlohmann::json& j) {
  object(j, "an expert host command");
  const std::string cmd = string_field(j, "cmd", true, "an expert host command");
  HostCommand c;
  if (cmd == "load") c.kind = HostCommandKind::Load;
  else if (cmd == "unload") c.kind = HostCommandKind::Unload;
  else if (cmd == "leave") c.kind = HostCommandKind::Leave;
  else bad("expert host commands are load, unload (with experts) and leave, not '" + cmd + "'");
  if (c.kind != HostCommandKind::Leave) {
    if (!j.contains("experts")) bad("load and unload need \"experts\"");
    c.experts = ids_field(j, "experts", -1, "an expert host command");
  }
  return c;
}

nlohmann::json to_json(const PlacementTable& t) {
  nlohmann::json hosts = nlohmann::json::array();
  for (const auto& h : t.hosts)
    hosts.push_back({{"name", h.name}, {"endpoint", h.endpoint}, {"zone", h.zone}, {"state", host_state_name(h.state)},
                     {"experts", h.experts}, {"load", h.load}, {"suspect", h.suspect}});
  return {{"version", t.version}, {"hosts", hosts}};
}

PlacementTable placement_table_from_json(const nlohmann::json& j) {
  object(j, "a placement table");
  PlacementTable t;
  t.version = count_field(j, "version", "a placement table");
  if (!j.contains("hosts") || !j["hosts"].is_array()) bad("a placement table needs \"hosts\"");
  for (const auto& h : j["hosts"]) {
    object(h, "a placement table's host");
    TableHost th;
    th.name = string_field(h, "name", true, "a table host");
    th.endpoint = string_field(h, "endpoint", true, "a table host");
    th.zone = string_field(h, "zone", false, "a table host");
    const std::string st = string_field(h, "state", true, "a table host");
    th.state = st == "ready" ? HostState::Ready : st == "draining" ? HostState::Draining : HostState::Dead;
    th.experts = ids_field(h, "experts", -1, "a table host");
    th.load = h.contains("load") && h["load"].is_number() ? h["load"].get<double>() : 0.0;
    th.suspect = h.contains("suspect") && h["suspect"].is_boolean() && h["suspect"].get<bool>();
    t.hosts.push_back(std::move(th));
  }
  return t;
}

nlohmann::json to_json(const DispatcherHello& h) { return {{"name", h.name}, {"zone", h.zone}}; }

DispatcherHello dispatcher_hello_from_json(const nlohmann::json& j) {
  object(j, "a Subscribe");
  return {string_field(j, "name", true, "a Subscribe"), string_field(j, "zone", false, "a Subscribe")};
}

nlohmann::json to_json(const Suspicion& s) {
  return {{"host", s.host}, {"reason", suspicion_reason_name(s.reason)}, {"detail", s.detail}};
}

Suspicion suspicion_from_json(const nlohmann::json& j) {
  object(j, "a Suspect");
  Suspicion s;
  s.host = string_field(j, "host", true, "a Suspect");
  const std::string r = string_field(j, "reason", true, "a Suspect");
  if (r == "disconnect") s.reason = SuspicionReason::Disconnect;
  else if (r == "deadline") s.reason = SuspicionReason::Deadline;
  else bad("a Suspect's reason is disconnect or deadline, not '" + r + "'");
  s.detail = string_field(j, "detail", false, "a Suspect");
  return s;
}

nlohmann::json to_json(const ReplicaReport& r) {
  return {{"name", r.name}, {"endpoint", r.endpoint}, {"zone", r.zone}, {"running", r.running}, {"waiting", r.waiting},
          {"kv_pages_free", r.kv_pages_free}, {"kv_pages_total", r.kv_pages_total}, {"draining", r.draining}};
}

ReplicaReport replica_report_from_json(const nlohmann::json& j) {
  object(j, "a Replica report");
  ReplicaReport r;
  r.name = string_field(j, "name", true, "a Replica report");
  r.endpoint = string_field(j, "endpoint", true, "a Replica report");
  r.zone = string_field(j, "zone", false, "a Replica report");
  auto count = [&](const char* key) -> int64_t {
    if (!j.contains(key)) return 0;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0) bad(std::string("a Replica report's ") + key + " must be a non-negative integer");
    return j[key].get<int64_t>();
  };
  r.running = count("running");
  r.waiting = count("waiting");
  r.kv_pages_free = count("kv_pages_free");
  r.kv_pages_total = count("kv_pages_total");
  if (j.contains("draining")) {
    if (!j["draining"].is_boolean()) bad("a Replica report's draining must be true or false");
    r.draining = j["draining"].get<bool>();
  }
  return r;
}

nlohmann::json to_json(const ReplicaList& l) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : l.replicas) a.push_back(to_json(r));
  return {{"replicas", a}};
}

ReplicaList replica_list_from_json(const nlohmann::json& j) {
  object(j, "a replica list");
  if (!j.contains("replicas") || !j["replicas"].is_array()) bad("a replica list needs \"replicas\"");
  ReplicaList l;
  for (const auto& r : j["replicas"]) l.replicas.push_back(replica_report_from_json(r));
  return l;
}

nlohmann::json to_json(const RouterCommand& c) {
  switch (c.kind) {
    case RouterCommandKind::Stats: return {{"cmd", "stats"}};
    case RouterCommandKind::Rebalance: return {{"cmd", "rebalance"}};
    case RouterCommandKind::Drain: return {{"cmd", "drain"}, {"host", c.host}};
    case RouterCommandKind::Leaving: return {{"cmd", "leaving"}, {"host", c.host}};
    case RouterCommandKind::Replicas: return {{"cmd", "replicas"}};
  }
  return {};
}

RouterCommand router_command_from_json(const nlohmann::json& j) {
  object(j, "a router command");
  const std::string cmd = string_field(j, "cmd", true, "a router command");
  RouterCommand c;
  if (cmd == "stats" || cmd == "placement") c.kind = RouterCommandKind::Stats;
  else if (cmd == "rebalance") c.kind = RouterCommandKind::Rebalance;
  else if (cmd == "drain") c.kind = RouterCommandKind::Drain;
  else if (cmd == "leaving") c.kind = RouterCommandKind::Leaving;
  else if (cmd == "replicas") c.kind = RouterCommandKind::Replicas;
  else bad("router commands are stats, rebalance, drain {host}, leaving {host} and replicas, not '" + cmd + "'");
  if (c.kind == RouterCommandKind::Drain || c.kind == RouterCommandKind::Leaving)
    c.host = string_field(j, "host", true, "a router command");
  return c;
}

}  // namespace moemesh
