// ExpertDispatcher: the sockets, the clock and the gates around the decisions
// of dispatch_state.h. Everything here runs on the thread that calls
// begin()/end() (the engine's compute thread, one dispatcher per micro-batch
// lane), so a dispatch goes out and its answer comes in with no hand-off.
#include "services/expert_host/client.h"

#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/curve.h"
#include "actors/role_metrics.h"
#include "actors/socket_monitor.h"
#include "actors/transport.h"
#include "dispatch_state.h"
#include "services/expert_host/api.h"
#include "services/router/client.h"

namespace moemesh {

using namespace dispatch_internal;

DispatcherStats& DispatcherStats::operator+=(const DispatcherStats& o) {
  calls += o.calls;
  failed_calls += o.failed_calls;
  dispatches += o.dispatches;
  hedges += o.hedges;
  cross_zone += o.cross_zone;
  suspicions += o.suspicions;
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  table_version = std::max(table_version, o.table_version);
  phases.calls += o.phases.calls;
  phases.gate += o.phases.gate;
  phases.send += o.phases.send;
  phases.wait += o.phases.wait;
  phases.host_compute += o.phases.host_compute;
  phases.sum += o.phases.sum;
  for (const auto& [k, v] : o.retries) retries[k] += v;
  for (const auto& [name, h] : o.hosts) {
    Host& m = hosts[name];
    m.dispatches += h.dispatches;
    m.rows += h.rows;
    m.bytes += h.bytes;
    m.late_answers += h.late_answers;
    m.latency_p50_ms = std::max(m.latency_p50_ms, h.latency_p50_ms);
    m.latency_p99_ms = std::max(m.latency_p99_ms, h.latency_p99_ms);
    m.deadline_ms = std::max(m.deadline_ms, h.deadline_ms);
    m.up |= h.up;
    m.listed |= h.listed;
    m.suspect |= h.suspect;
    m.slow |= h.slow;
    m.zone = h.zone;
  }
  for (const auto& [name, l] : o.latencies) latencies[name].insert(latencies[name].end(), l.begin(), l.end());
  for (const auto& [layer, rows] : o.layer_rows) {
    auto& v = layer_rows[layer];
    v.resize(std::max(v.size(), rows.size()), 0);
    for (size_t e = 0; e < rows.size(); ++e) v[e] += rows[e];
  }
  return *this;
}

nlohmann::json to_json(const DispatcherStats& s) {
  nlohmann::json hosts = nlohmann::json::object();
  for (const auto& [name, h] : s.hosts)
    hosts[name] = {{"dispatches", h.dispatches}, {"rows", h.rows}, {"bytes", h.bytes}, {"late_answers", h.late_answers},
                   {"latency_p50_ms", h.latency_p50_ms}, {"latency_p99_ms", h.latency_p99_ms},
                   {"deadline_ms", h.deadline_ms},       {"up", h.up},    {"listed", h.listed},
                   {"suspect", h.suspect},               {"slow", h.slow}, {"zone", h.zone}};
  nlohmann::json retries = nlohmann::json::object();
  for (int r = 0; r < kRetryReasons; ++r) retries[retry_reason_name(static_cast<RetryReason>(r))] = 0;
  for (const auto& [k, v] : s.retries) retries[k] = v;
  const auto& p = s.phases;
  const nlohmann::json phases = {{"calls", p.calls}, {"gate", p.gate}, {"send", p.send}, {"wait", p.wait},
                                 {"host_compute", p.host_compute}, {"sum", p.sum}};
  return {{"calls", s.calls},           {"failed", s.failed_calls},   {"dispatches", s.dispatches},
          {"hedges", s.hedges},         {"cross_zone", s.cross_zone}, {"suspicions", s.suspicions},
          {"bytes_sent", s.bytes_sent}, {"bytes_received", s.bytes_received},
          {"table_version", s.table_version}, {"retries", retries}, {"hosts", hosts},
          {"phase_seconds", phases}};
}

struct ExpertDispatcher::Impl {
  struct Link {
    std::unique_ptr<zmq::socket_t> sock;
    std::unique_ptr<SocketMonitor> monitor;
  };
  struct Outstanding {
    int host = 0;
    int64_t rows = 0;
    Clock::time_point sent;
  };
  struct HostCounters {
    uint64_t dispatches = 0, rows = 0, bytes = 0, late = 0;
  };

  zmq::context_t& ctx;
  const ModelConfig& cfg;
  DispatcherOptions o;
  DeadlineRule rule;
  std::map<int64_t, std::unique_ptr<MoeGate>> gates;
  std::unique_ptr<TableSubscription> table;  // none for a fixed placement
  HostSet hosts;
  std::vector<Link> links;  // by host index
  std::map<uint64_t, Outstanding> outstanding;
  std::map<uint64_t, int> part_of;  // request id → part of the call in flight
  std::map<int, Clock::time_point> last_suspicion;
  uint64_t next_request = 1;
  std::vector<HostCounters> counters;  // by host index

  // The call in flight.
  std::optional<CallState> call;
  int32_t layer = 0;
  const float* x = nullptr;
  int64_t tokens = 0;
  std::vector<float> gathered;  // a part's rows, reused call to call
  Routing routing;
  std::vector<float> logits;
  double call_host_compute = 0;  // the slowest answer's host compute, this call
  DispatcherStats::Phases phases;  // published with the rest in publish_stats

  mutable std::mutex mu;  // guards shared
  DispatcherStats shared;

  Impl(zmq::context_t& c, const ModelConfig& m, DispatcherOptions opts)
      : ctx(c), cfg(m), o(std::move(opts)), hosts(static_cast<int32_t>(m.n_routed_experts), o.zone, o.zone_overload_rows) {
    rule.percentile = o.deadline_percentile;
    rule.factor = o.deadline_factor;
    rule.floor = std::chrono::duration_cast<std::chrono::microseconds>(o.deadline_floor);
  }

  void load_gates(const Checkpoint& ckpt, const std::vector<int64_t>& layers) {
    for (int64_t l : layers) gates[l] = std::make_unique<MoeGate>(cfg, ckpt, l);
  }

  void add_retry(RetryReason r, uint64_t n = 1) {
    std::lock_guard<std::mutex> lock(mu);
    shared.retries[retry_reason_name(r)] += n;
  }

  // ---- the placement ----

  void take(const PlacementTable& t) {
    auto change = hosts.apply(t);
    if (!change) return;
    links.resize(hosts.size());
    counters.resize(hosts.size());
    for (int i : change->disconnect) close_link(i);
    for (size_t i = 0; i < hosts.size(); ++i) {
      const int h = static_cast<int>(i);
      // Hosts no longer listed keep their connection while work is outstanding there.
      if (!hosts.at(h).listed && links[i].sock && !has_outstanding(h)) close_link(h);
      // Every listed host has a link: new ones, those at a new address, and those
      // readmitted at the address they had (their link was closed while they were out).
      if (hosts.at(h).listed && !links[i].sock && !hosts.at(h).endpoint.empty()) open_link(h);
    }
    spdlog::debug("dispatcher {}: placement table {} ({} hosts)", o.name, t.version, t.hosts.size());
  }

  bool has_outstanding(int host) const {
    for (const auto& [id, out] : outstanding)
      if (out.host == host) return true;
    return false;
  }

  void open_link(int i) {
    HostView& h = hosts.at(i);
    Link& l = links.at(static_cast<size_t>(i));
    close_link(i);
    l.sock = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    l.sock->set(zmq::sockopt::linger, 0);
    l.sock->set(zmq::sockopt::immediate, 1);  // sending fails, rather than queues, while there is no connection
    enable_heartbeats(*l.sock, static_cast<int>(o.link_heartbeat.count()), static_cast<int>(o.link_timeout.count()));
    l.monitor = std::make_unique<SocketMonitor>(ctx, *l.sock);
    try {
      curve::dial(*l.sock, h.endpoint, "expert-host", h.name);
    } catch (const std::runtime_error& e) {
      // A host the keyring does not know: its handshake can only fail, so it
      // never comes up and dispatch goes to the replicas that do.
      spdlog::error("dispatcher: {}", e.what());
    }
    l.sock->connect(h.endpoint);
    // inproc:// has no handshake to report (nor a link to lose): in one process
    // the host is there once its endpoint is bound.
    h.up = h.endpoint.rfind("inproc://", 0) == 0;
  }

  void close_link(int i) {
    Link& l = links.at(static_cast<size_t>(i));
    l.monitor.reset();
    l.sock.reset();
    for (auto it = outstanding.begin(); it != outstanding.end();)
      it = it->second.host == i ? outstanding.erase(it) : std::next(it);
    hosts.at(i).inflight_rows = 0;
    hosts.at(i).up = false;
  }

  // ---- events ----

  void suspect(int host, SuspicionReason why, const std::string& detail) {
    if (!table) return;
    const auto now = Clock::now();
    auto& last = last_suspicion[host];
    if (now - last < std::chrono::seconds(1)) return;  // once a second per host is enough for the router
    last = now;
    table->suspect(Suspicion{hosts.at(host).name, why, detail});
    std::lock_guard<std::mutex> lock(mu);
    ++shared.suspicions;
  }

  void host_down(int i) {
    HostView& h = hosts.at(i);
    if (!h.up && !has_outstanding(i)) return;
    h.up = false;
    for (auto it = outstanding.begin(); it != outstanding.end();)
      it = it->second.host == i ? outstanding.erase(it) : std::next(it);
    h.inflight_rows = 0;
    size_t moved = 0;
    if (call)
      for (int p : call->live_parts_on(i)) {
        call->failed(p, false);
        ++moved;
      }
    if (moved) {
      spdlog::warn("dispatcher {}: connection to expert host {} dropped; {} dispatches go to replicas", o.name, h.name, moved);
      add_retry(RetryReason::Disconnect, moved);
    } else {
      spdlog::info("dispatcher {}: connection to expert host {} dropped", o.name, h.name);
    }
    if (h.listed) suspect(i, SuspicionReason::Disconnect, "its connection dropped");
  }

  void on_reply(int i, wire::Message m) {
    auto it = outstanding.find(m.header.request_id);
    if (it == outstanding.end() || it->second.host != i) return;  // from before a reconnect
    const Outstanding out = it->second;
    outstanding.erase(it);
    HostView& h = hosts.at(i);
    h.inflight_rows = std::max<int64_t>(0, h.inflight_rows - out.rows);
    const double seconds = std::chrono::duration<double>(Clock::now() - out.sent).count();
    if (m.header.type == wire::MsgType::Combine) {
      h.latency.add(out.rows, seconds);
      std::lock_guard<std::mutex> lock(mu);
      shared.latencies[h.name].push_back(seconds);
      shared.bytes_received += payload_bytes(m);
    }
    auto p = part_of.find(m.header.request_id);
    if (p == part_of.end() || !call) {
      ++counters[static_cast<size_t>(i)].late;
      return;
    }
    const int part = p->second;
    part_of.erase(p);
    if (m.header.type == wire::MsgType::Combine) {
      std::vector<float> y;
      try {
        y = wire::get_activations(m, cfg.hidden_size);
        if (y.size() != call->part(part).rows.size() * static_cast<size_t>(cfg.hidden_size))
          throw wire::WireError(wire::ErrorCode::BadFrame, "a Combine with the wrong number of rows");
      } catch (const wire::WireError& e) {
        spdlog::warn("dispatcher {}: from {}: {}", o.name, h.name, e.what());
        call->failed(part, true);
        add_retry(RetryReason::Error);
        return;
      }
      call_host_compute = std::max(call_host_compute, m.header.aux * 1e-6);
      call->combined(part, std::move(y));
      return;
    }
    // Refused: the work goes elsewhere.
    const MeshErrorText err = error_text(m);
    RetryReason why = RetryReason::Error;
    if (err.code == wire::ErrorCode::NotHeld) {
      why = RetryReason::NotHeld;
      if (table) table->refresh();  // the table it chose by is stale
    } else if (err.code == wire::ErrorCode::ShuttingDown) {
      why = RetryReason::ShuttingDown;
      h.state = HostState::Draining;  // until the next table says what the router makes of it
    } else {
      spdlog::warn("dispatcher {}: expert host {} refused a dispatch: {}", o.name, h.name, err.text);
    }
    call->failed(part, true);
    add_retry(why);
  }

  struct MeshErrorText {
    wire::ErrorCode code;
    std::string text;
  };
  static MeshErrorText error_text(const wire::Message& m) {
    const uint32_t c = m.header.type == wire::MsgType::Error ? m.header.aux : static_cast<uint32_t>(wire::ErrorCode::BadFrame);
    return {c <= wire::kMaxErrorCode ? static_cast<wire::ErrorCode>(c) : wire::ErrorCode::Failed,
            m.payloads.empty() ? "unexpected reply" : std::string(m.payload_as<char>(0), m.payload_size(0))};
  }

  // Everything that arrived, waiting at most until `until`.
  void pump(Clock::time_point until) {
    std::vector<zmq::pollitem_t> items;
    std::vector<std::pair<int, int>> what;  // (kind, host): 0 replies, 1 monitor, 2 table
    for (size_t i = 0; i < links.size(); ++i) {
      if (!links[i].sock) continue;
      items.push_back({static_cast<void*>(*links[i].sock), 0, ZMQ_POLLIN, 0});
      what.emplace_back(0, static_cast<int>(i));
      items.push_back({static_cast<void*>(links[i].monitor->events()), 0, ZMQ_POLLIN, 0});
      what.emplace_back(1, static_cast<int>(i));
    }
    if (table)
      for (zmq::socket_t* s : table->sockets()) {
        items.push_back({static_cast<void*>(*s), 0, ZMQ_POLLIN, 0});
        what.emplace_back(2, -1);
      }
    const auto now = Clock::now();
    const auto wait = until <= now ? std::chrono::milliseconds(0)
                                   : std::min(std::chrono::duration_cast<std::chrono::milliseconds>(until - now) + std::chrono::milliseconds(1),
                                              std::chrono::milliseconds(1000));
    try {
      zmq::poll(items, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      return;
    }
    bool table_ready = false;
    for (size_t k = 0; k < items.size(); ++k) {
      if (!(items[k].revents & ZMQ_POLLIN)) continue;
      const auto [kind, i] = what[k];
      if (kind == 2) {
        table_ready = true;
        continue;
      }
      if (!links[static_cast<size_t>(i)].sock) continue;  // closed while handling an earlier item
      if (kind == 1) {
        while (auto e = links[static_cast<size_t>(i)].monitor->next()) {
          if (*e == PeerEvent::Up) hosts.at(i).up = true;
          else host_down(i);
        }
        continue;
      }
      zmq::socket_t& s = *links[static_cast<size_t>(i)].sock;
      for (int n = 0; n < 64 && (s.get(zmq::sockopt::events) & ZMQ_POLLIN); ++n) {
        std::optional<wire::Message> m;
        try {
          m = wire::receive(s);
        } catch (const wire::WireError& e) {
          spdlog::warn("dispatcher {}: a bad frame from {}: {}", o.name, hosts.at(i).name, e.what());
          // Its request id readable: that dispatch goes elsewhere now rather than at its deadline.
          if (e.request_id()) on_reply(i, wire::error_message(e.request_id(), wire::ErrorCode::BadFrame, e.what()));
          continue;
        }
        if (m) on_reply(i, std::move(*m));
      }
    }
    if (table_ready || table) poll_table();
  }

  void poll_table() {
    if (!table) return;
    if (auto t = table->poll(hosts.version())) take(*t);
  }

  // ---- sending ----

  void send(const std::vector<int>& parts) {
    const auto now = Clock::now();
    for (int p : parts) {
      Part& part = call->part(p);
      HostView& h = hosts.at(part.host);
      Link& l = links.at(static_cast<size_t>(part.host));
      const int64_t rows = static_cast<int64_t>(part.rows.size()), H = cfg.hidden_size;
      // Every row in order (one host for the whole batch, as at batch 1) is sent
      // from the caller's buffer; otherwise the part's rows are gathered first.
      bool all_rows = rows == tokens;
      for (int64_t r = 0; all_rows && r < rows; ++r) all_rows = part.rows[r] == r;
      const float* xs = x;
      if (!all_rows) {
        gathered.resize(static_cast<size_t>(rows * H));
        for (int64_t r = 0; r < rows; ++r) std::copy(x + part.rows[r] * H, x + (part.rows[r] + 1) * H, gathered.begin() + r * H);
        xs = gathered.data();
      }
      const uint64_t id = next_request++;
      wire::Message m = encode_dispatch(id, layer, hosts.version(), xs, rows, H, part.experts, part.weights, routing.top_k,
                                        o.activations);
      const uint64_t bytes = payload_bytes(m);
      bool ok = false;
      if (l.sock) {
        try {
          ok = send_now(*l.sock, m);
        } catch (const zmq::error_t& e) {
          spdlog::warn("dispatcher {}: sending to {}: {}", o.name, h.name, e.what());
        }
      }
      if (!ok) {
        // Not taken (no connection after all, or its queue full): the group is
        // planned again, elsewhere if it can be. The monitor says when the link is down.
        h.inflight_rows = std::max<int64_t>(0, h.inflight_rows - rows);
        call->failed(p, true);
        continue;
      }
      part.request_id = id;
      part.sent = now;
      part.deadline = now + h.latency.deadline(rows, rule);
      outstanding[id] = {part.host, rows, now};
      part_of[id] = p;
      auto& c = counters[static_cast<size_t>(part.host)];
      ++c.dispatches;
      c.rows += static_cast<uint64_t>(rows);
      c.bytes += bytes;
      std::lock_guard<std::mutex> lock(mu);
      ++shared.dispatches;
      shared.bytes_sent += bytes;
      if (hosts.cross_zone(part.host)) ++shared.cross_zone;
    }
  }

  // One multipart message without blocking; false when the socket has no connection.
  static bool send_now(zmq::socket_t& s, wire::Message& m) {
    const auto h = wire::encode_header(m.header);
    if (!s.send(zmq::buffer(h), (m.payloads.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore) | zmq::send_flags::dontwait))
      return false;
    for (size_t i = 0; i < m.payloads.size(); ++i)
      s.send(m.payloads[i], i + 1 == m.payloads.size() ? zmq::send_flags::none : zmq::send_flags::sndmore);
    return true;
  }

  void on_deadline(int p) {
    Part& part = call->part(p);
    HostView& h = hosts.at(part.host);
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - part.sent);
    if (h.slow_at == 0) h.slow_at = std::max<uint64_t>(hosts.version(), 1);
    suspect(part.host, SuspicionReason::Deadline, "no answer after " + std::to_string(late.count()) + " ms");
    const std::vector<int> hedge = call->hedge(p, hosts);
    if (!hedge.empty()) {
      spdlog::warn("dispatcher {}: expert host {} has not answered in {} ms; hedging on a replica", o.name, h.name, late.count());
      {
        std::lock_guard<std::mutex> lock(mu);
        ++shared.hedges;
        shared.retries[retry_reason_name(RetryReason::Deadline)] += 1;
      }
      send(hedge);
    } else {
      // No replica to hedge on: slowness is not death, so the work waits (checked again later).
      part.deadline = Clock::now() + std::max(std::chrono::duration_cast<std::chrono::microseconds>(late), rule.floor);
    }
  }

  void publish_stats() {
    std::lock_guard<std::mutex> lock(mu);
    shared.table_version = hosts.version();
    shared.phases = phases;
    for (size_t i = 0; i < hosts.size(); ++i) {
      const HostView& h = hosts.at(static_cast<int>(i));
      auto& s = shared.hosts[h.name];
      s.dispatches = counters[i].dispatches;
      s.rows = counters[i].rows;
      s.bytes = counters[i].bytes;
      s.late_answers = counters[i].late;
      s.latency_p50_ms = h.latency.quantile(1, 0.5).value_or(0) * 1e3;
      s.latency_p99_ms = h.latency.quantile(1, 0.99).value_or(0) * 1e3;
      s.deadline_ms = static_cast<double>(h.latency.deadline(1, rule).count()) / 1e3;
      s.up = h.up;
      s.listed = h.listed;
      s.suspect = h.suspect;
      s.slow = h.slow_at != 0;
      s.zone = h.zone;
    }
  }

  void fail(const std::string& why) {
    call.reset();
    part_of.clear();
    {
      std::lock_guard<std::mutex> lock(mu);
      ++shared.failed_calls;
    }
    publish_stats();
    throw ExpertsUnavailable(why);
  }
};

ExpertDispatcher::ExpertDispatcher(zmq::context_t& ctx, const ModelConfig& cfg, const Checkpoint& ckpt,
                                   const std::vector<int64_t>& layers, const std::string& router, DispatcherOptions opts)
    : impl_(std::make_unique<Impl>(ctx, cfg, std::move(opts))) {
  impl_->load_gates(ckpt, layers);
  impl_->table = std::make_unique<TableSubscription>(ctx, router, DispatcherHello{impl_->o.name, impl_->o.zone});
  // The first table, if the router answers soon; otherwise calls wait for it.
  if (auto t = impl_->table->wait(0, std::chrono::milliseconds(5000))) impl_->take(*t);
  else spdlog::warn("dispatcher {}: no placement table from {} yet", impl_->o.name, router);
}

ExpertDispatcher::ExpertDispatcher(zmq::context_t& ctx, const ModelConfig& cfg, const Checkpoint& ckpt,
                                   const std::vector<int64_t>& layers, std::vector<StaticExpertHost> hosts, DispatcherOptions opts)
    : impl_(std::make_unique<Impl>(ctx, cfg, std::move(opts))) {
  impl_->load_gates(ckpt, layers);
  // A fixed placement never changes: experts nobody holds are an error now, not at the first token.
  std::vector<bool> held(static_cast<size_t>(cfg.n_routed_experts), false);
  for (const auto& h : hosts)
    for (int32_t e : h.experts) {
      if (e < 0 || e >= cfg.n_routed_experts)
        throw std::invalid_argument("expert host " + h.endpoint + ": the model has no expert " + std::to_string(e));
      held[static_cast<size_t>(e)] = true;
    }
  std::string missing;
  for (size_t e = 0; e < held.size(); ++e)
    if (!held[e]) missing += (missing.empty() ? "" : ",") + std::to_string(e);
  if (!missing.empty()) throw std::invalid_argument("no expert host holds experts " + missing);
  PlacementTable t;
  t.version = 1;
  for (auto& h : hosts) {
    TableHost th;
    th.name = h.name.empty() ? h.endpoint : h.name;
    th.endpoint = h.endpoint;
    th.zone = h.zone;
    th.experts = std::move(h.experts);
    t.hosts.push_back(std::move(th));
  }
  impl_->take(t);
}

ExpertDispatcher::~ExpertDispatcher() = default;

void ExpertDispatcher::routed(int64_t layer, const float* x, int64_t tokens, float* out) {
  begin(layer, x, tokens);
  end(out);
}

void ExpertDispatcher::begin(int64_t layer, const float* x, int64_t tokens) {
  Impl& s = *impl_;
  auto g = s.gates.find(layer);
  if (g == s.gates.end()) throw std::out_of_range("no MoE layer " + std::to_string(layer) + " here");
  const auto t0 = Clock::now();
  g->second->route(x, tokens, s.routing, s.logits);
  const auto t1 = Clock::now();
  const double gate_seconds = std::chrono::duration<double>(t1 - t0).count();
  if (ctx_ && ctx_->profile) {
    ctx_->profile->add(OpClass::Gate, gate_seconds);
    ctx_->profile->add(OpClass::RoutedExperts, -gate_seconds);
  }
  ++s.phases.calls;
  s.phases.gate += gate_seconds;
  s.call_host_compute = 0;
  s.pump(Clock::now());  // what arrived since the last call: tables, connections, late answers
  s.layer = static_cast<int32_t>(layer);
  s.x = x;
  s.tokens = tokens;
  s.part_of.clear();
  s.call.emplace(s.layer, s.routing, Clock::now(), s.o.max_wait);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.shared.calls;
    if (s.o.count_layers) {
      auto& v = s.shared.layer_rows[layer];
      v.resize(static_cast<size_t>(s.cfg.n_routed_experts), 0);
      for (int32_t e : s.routing.experts)
        if (e >= 0) ++v[static_cast<size_t>(e)];
    }
  }
  try {
    s.send(s.call->plan(s.hosts));
  } catch (const CallFailure& f) {
    s.fail(f.what);
  }
  s.phases.send += std::chrono::duration<double>(Clock::now() - t1).count();
}

void ExpertDispatcher::end(float* out) {
  Impl& s = *impl_;
  if (!s.call) throw std::logic_error("ExpertDispatcher::end without begin");
  CallState& c = *s.call;
  const auto t0 = Clock::now();
  try {
    while (!c.done()) {
      if (c.waiting()) s.send(c.plan(s.hosts));
      if (c.done()) break;
      const auto now = Clock::now();
      if (now >= c.give_up_at())
        s.fail("layer " + std::to_string(s.layer) + ": no expert host answered within " + std::to_string(s.o.max_wait.count()) +
               " ms: " + c.pending_summary(s.hosts));
      for (int p : c.overdue(now)) s.on_deadline(p);
      auto wake = std::min(c.next_deadline(), c.give_up_at());
      if (c.waiting()) wake = std::min(wake, now + std::chrono::milliseconds(20));  // look again for a usable replica
      s.pump(wake);
    }
  } catch (const CallFailure& f) {
    s.fail(f.what);
  }
  const auto t1 = Clock::now();
  c.sum(out, s.cfg.hidden_size);
  s.phases.wait += std::chrono::duration<double>(t1 - t0).count();
  s.phases.host_compute += s.call_host_compute;
  s.phases.sum += std::chrono::duration<double>(Clock::now() - t1).count();
  s.call.reset();
  s.part_of.clear();
  s.publish_stats();
}

DispatcherMetrics::DispatcherMetrics(RoleMetrics& m, bool per_layer)
    : calls_(&m.counter("moemesh_moe_requests_total", "MoE layer calls this role's dispatchers made, by status")),
      retries_(&m.counter("moemesh_dispatch_retries_total", "Dispatches sent again elsewhere, by reason")),
      dispatches_(&m.counter("moemesh_dispatches_total", "Dispatches sent, per expert host")),
      bytes_(&m.counter("moemesh_dispatch_bytes_total", "Bytes dispatched to each expert host")),
      seconds_(&m.histogram("moemesh_dispatch_seconds", "From a dispatch to its answer, per expert host")),
      hedges_(&m.counter("moemesh_dispatch_hedges_total", "Dispatches past their deadline duplicated on a replica").Add({})),
      cross_zone_(&m.counter("moemesh_cross_zone_dispatches_total", "Dispatches to an expert host of another zone").Add({})),
      suspicions_(&m.counter("moemesh_dispatch_suspicions_total", "Expert hosts reported to the router as unreachable or slow").Add({})),
      phases_(&m.counter("moemesh_moe_call_phase_seconds_total",
                         "Time of MoE calls by phase (host_compute: the slowest answer's, as its host reported it; part of wait)")),
      by_layer_(per_layer ? &m.counter("moemesh_tokens_routed_by_layer_total", "Rows routed to each expert of each MoE layer") : nullptr) {
  // Every series a dashboard needs exists from the start.
  calls_->Add({{"status", "ok"}});
  calls_->Add({{"status", "failed"}});
  for (int r = 0; r < kRetryReasons; ++r) retries_->Add({{"reason", retry_reason_name(static_cast<RetryReason>(r))}});
}

void DispatcherMetrics::update(const DispatcherStats& now) {
  auto add = [](prometheus::Counter& c, uint64_t to, uint64_t from) {
    if (to > from) c.Increment(static_cast<double>(to - from));
  };
  add(calls_->Add({{"status", "ok"}}), now.calls - now.failed_calls, seen_.calls - seen_.failed_calls);
  add(calls_->Add({{"status", "failed"}}), now.failed_calls, seen_.failed_calls);
  for (const auto& [reason, n] : now.retries) {
    auto s = seen_.retries.find(reason);
    add(retries_->Add({{"reason", reason}}), n, s == seen_.retries.end() ? 0 : s->second);
  }
  add(*hedges_, now.hedges, seen_.hedges);
  add(*cross_zone_, now.cross_zone, seen_.cross_zone);
  add(*suspicions_, now.suspicions, seen_.suspicions);
  const std::pair<const char*, double DispatcherStats::Phases::*> phases[] = {
      {"gate", &DispatcherStats::Phases::gate}, {"send", &DispatcherStats::Phases::send},
      {"wait", &DispatcherStats::Phases::wait}, {"host_compute", &DispatcherStats::Phases::host_compute},
      {"sum", &DispatcherStats::Phases::sum}};
  for (const auto& [name, field] : phases) {
    const double d = now.phases.*field - seen_.phases.*field;
    auto& c = phases_->Add({{"phase", name}});
    if (d > 0) c.Increment(d);
  }
  for (const auto& [name, h] : now.hosts) {
    auto s = seen_.hosts.find(name);
    const DispatcherStats::Host before = s == seen_.hosts.end() ? DispatcherStats::Host{} : s->second;
    add(dispatches_->Add({{"host", name}}), h.dispatches, before.dispatches);
    add(bytes_->Add({{"host", name}}), h.bytes, before.bytes);
  }
  for (const auto& [name, samples] : now.latencies) {
    auto& hist = seconds_->Add({{"host", name}}, latency_buckets());
    for (double v : samples) hist.Observe(v);
  }
  if (by_layer_)
    for (const auto& [layer, rows] : now.layer_rows) {
      const auto s = seen_.layer_rows.find(layer);
      for (size_t e = 0; e < rows.size(); ++e) {
        const uint64_t before = s == seen_.layer_rows.end() || e >= s->second.size() ? 0 : s->second[e];
        if (rows[e] > before)
          by_layer_->Add({{"layer", std::to_string(layer)}, {"expert", std::to_string(e)}}).Increment(static_cast<double>(rows[e] - before));
      }
    }
  seen_ = now;
  seen_.latencies.clear();
}

void ExpertDispatcher::maintain() {
  if (impl_->call) return;  // between begin() and end() the call's own pumping does it
  impl_->pump(Clock::now());
  impl_->publish_stats();
}

DispatcherStats ExpertDispatcher::stats(bool take_latencies) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  DispatcherStats out = impl_->shared;
  if (take_latencies) impl_->shared.latencies.clear();
  else out.latencies.clear();
  return out;
}

}  // namespace moemesh
