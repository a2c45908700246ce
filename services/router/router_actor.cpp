// The router role's actor: it only carries messages between its sockets and
// the Membership that decides (membership.h). Hosts report on the ROUTER socket
// and get commands over one DEALER socket each (monitored: a closed connection
// is the host gone); dispatchers subscribe on the ROUTER socket and get every
// new placement table, and once a second the current one again.
#include <chrono>
#include <map>

#include <spdlog/spdlog.h>

#include "actors/curve.h"
#include "actors/drain.h"
#include "actors/mesh_actor.h"
#include "actors/role_metrics.h"
#include "actors/transport.h"
#include "core/model_config.h"
#include "membership.h"
#include "replica_registry.h"
#include "services/router/api.h"

namespace moemesh {
namespace {

using namespace router_internal;
using wire::json_message;


// Table versions start from the clock, so they keep increasing across restarts.
uint64_t first_version() {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  return static_cast<uint64_t>(ms.count()) << 12;
}

constexpr auto kTick = std::chrono::milliseconds(200);
constexpr auto kRepublish = std::chrono::milliseconds(1000);
constexpr auto kSubscriberTimeout = std::chrono::seconds(30);

class RouterActor : public caf::event_based_actor {
 public:
  RouterActor(caf::actor_config& c, RouterOptions opts, zmq::context_t* ctx, std::promise<std::string>* bound,
              std::string* metrics_url)
      : caf::event_based_actor(c), opts_(std::move(opts)), transport_(*ctx), bound_(bound), metrics_url_(metrics_url) {}

  caf::behavior make_behavior() override {
    try {
      const auto load_start = Clock::now();
      const ModelConfig cfg = ModelConfig::load(opts_.model);
      n_experts_ = cfg.n_routed_experts;
      MembershipOptions mo;
      mo.heartbeat_timeout = opts_.heartbeat_timeout;
      mo.rebalance_moves = opts_.rebalance_moves;
      members_ = std::make_unique<Membership>(static_cast<int32_t>(n_experts_), mo, first_version());
      const std::string ep = transport_.start(opts_.bind, caf::actor_cast<caf::actor>(this));
      make_metrics(ep, std::chrono::duration<double>(Clock::now() - load_start).count());
      bound_->set_value(ep);
    } catch (...) {
      bound_->set_exception(std::current_exception());
      quit();
      return {};
    }
    spdlog::info("router: {} experts, heartbeat timeout {} ms", n_experts_, opts_.heartbeat_timeout.count());
    last_rebalance_ = last_publish_ = started_ = Clock::now();
    delayed_send(this, kTick, tick_atom::value);
    return {
        [this](inbound_atom, const InboundPtr& in) {
          received(in.get());
          on_inbound(*in);
        },
        [this](drain_atom, const DrainDone& done, int64_t) {
          // A control plane holds no work in flight: stopping loses nothing.
          DrainState d;
          d.start(done);
          d.settle(true);
        },
        [this](tick_atom) {
          on_tick();
          delayed_send(this, kTick, tick_atom::value);
        },
    };
  }

  void on_exit() override { transport_.stop(); }

 private:
  void make_metrics(const std::string& instance, double load_seconds) {
    metrics_ = std::make_unique<RoleMetrics>("router", instance, opts_.metrics);
    transport_.count_drops_in(*metrics_);
    *metrics_url_ = metrics_->url();
    auto& routed = metrics_->counter("moemesh_tokens_routed_total", "Rows the expert hosts computed for each expert, all MoE layers summed");
    for (int64_t e = 0; e < n_experts_; ++e) m_routed_.push_back(&routed.Add({{"expert", std::to_string(e)}}));
    m_up_ = &metrics_->gauge("moemesh_expert_host_up", "1 while an expert host is ready, 0.5 draining, 0 dead");
    m_membership_ = &metrics_->counter("moemesh_membership_changes_total", "Expert hosts joining, leaving or taken out").Add({});
    m_moves_ = &metrics_->counter("moemesh_rebalance_moves_total", "Expert loads and unloads asked for by rebalancing, joins and drains").Add({});
    m_suspicions_ = &metrics_->counter("moemesh_suspicions_total", "Hosts dispatchers reported, by reason");
    m_wire_errors_ = &metrics_->counter("moemesh_wire_errors_total", "Malformed or refused frames").Add({});
    m_refused_ = &metrics_->counter("moemesh_refused_hosts_total", "Host reports refused: a key that is not that host's (CURVE)").Add({});
    m_curve_refused_ = &metrics_->counter("moemesh_refused_connections_total",
                                          "Connections CURVE refused in this process: keys not in the keyring or not allowed to call").Add({});
    m_uncovered_ = &metrics_->gauge("moemesh_uncovered_experts", "Routed experts with no ready expert host").Add({});
    m_uncovered_->Set(static_cast<double>(n_experts_));
    m_zone_uncovered_ = &metrics_->gauge("moemesh_uncovered_experts_in_zone", "Routed experts with no live expert host in the zone");
    m_version_ = &metrics_->gauge("moemesh_placement_table_version", "Version of the placement table last published").Add({});
    m_dispatchers_ = &metrics_->gauge("moemesh_dispatchers", "Dispatchers subscribed to the placement table").Add({});
    m_replicas_ = &metrics_->gauge("moemesh_attention_replicas", "Attention replicas reporting to the router").Add({});
    metrics_->gauge("moemesh_model_load_seconds", "Time this role took to load its part of the model").Add({}).Set(load_seconds);
  }

  void on_inbound(Inbound& in) {
    try {
      if (in.event) {
        if (*in.event == PeerEvent::Down) {
          auto h = host_of_socket_.find(in.socket);
          if (h != host_of_socket_.end()) execute(members_->connection_down(h->second));
        }
        return;
      }
      const wire::Message& m = *in.message;
      if (in.socket != 0) return on_host_answer(in.socket, m);
      switch (m.header.type) {
        case wire::MsgType::Hello:
        case wire::MsgType::Heartbeat: return on_report(in);
        case wire::MsgType::Subscribe: return on_subscribe(in);
        case wire::MsgType::Suspect: return on_suspect(in);
        case wire::MsgType::Replica: return on_replica(in);
        case wire::MsgType::Control: return on_control(in);
        default:
          throw wire::WireError(wire::ErrorCode::Unsupported,
                                "router: cannot handle message type " + std::to_string(static_cast<int>(m.header.type)) +
                                    " (the router is a control plane: dispatch goes to expert hosts directly)");
      }
    } catch (const wire::WireError& e) {
      ++errors_;
      spdlog::warn("router: {}", e.what());
      if (in.socket == 0 && in.message)
        transport_.reply(std::move(in.routing), wire::error_message(in.message->header.request_id, e.code(), e.what()));
    }
  }

  template <class T, class F>
  T decode(const wire::Message& m, F from_json) {
    try {
      return from_json(wire::json_payload(m));
    } catch (const std::invalid_argument& e) {
      throw wire::WireError(wire::ErrorCode::BadFrame, std::string("router: ") + e.what());
    }
  }

  void on_report(Inbound& in) {
    const wire::Message& m = *in.message;
    const HostReport r = decode<HostReport>(m, [&](const nlohmann::json& j) { return host_report_from_json(j, n_experts_); });
    // Under CURVE a host reports only under its own key and name: another
    // role's key, or a host's key with another name, is never admitted.
    if (!in.peer.empty() && in.peer != "expert-host/" + r.name) {
      m_refused_->Increment();
      ++refused_hosts_;
      throw wire::WireError(wire::ErrorCode::Forbidden, "router: refused a report as expert host '" + r.name + "' from " + in.peer +
                                                            " (a host reports under its own key: docs/SECURITY.md)");
    }
    for (const auto& [e, n] : r.expert_rows) m_routed_[e]->Increment(static_cast<double>(n));
    execute(members_->report(r, Clock::now()));
    if (m.header.type == wire::MsgType::Hello)
      transport_.reply(std::move(in.routing), json_message(wire::MsgType::Hello, m.header.request_id, {{"registered", r.name}}));
  }

  void on_subscribe(Inbound& in) {
    const DispatcherHello h = decode<DispatcherHello>(*in.message, dispatcher_hello_from_json);
    const Identity who = identity_of(in.routing);
    if (!subscribers_.count(who)) spdlog::info("router: dispatcher {} subscribed{}", h.name, h.zone.empty() ? "" : " (zone " + h.zone + ")");
    subscribers_[who] = {h, Clock::now()};
    members_->placement().note_zone(h.zone);  // its zone's coverage is reported from now on
    if (settled_)
      transport_.reply(std::move(in.routing), json_message(wire::MsgType::Table, in.message->header.request_id, to_json(members_->table())));
  }

  void on_suspect(Inbound& in) {
    // Only dispatchers report hosts (under CURVE: attention and mtp-draft keys).
    const std::string_view kind = curve::peer_kind(in.peer);
    if (!in.peer.empty() && kind != "attention" && kind != "mtp-draft")
      throw wire::WireError(wire::ErrorCode::Forbidden, "router: " + in.peer + " may not report hosts (docs/SECURITY.md)");
    const Suspicion s = decode<Suspicion>(*in.message, suspicion_from_json);
    auto sub = subscribers_.find(identity_of(in.routing));
    if (sub != subscribers_.end()) sub->second.last_seen = Clock::now();
    m_suspicions_->Add({{"reason", suspicion_reason_name(s.reason)}}).Increment();
    execute(members_->suspect(s, Clock::now()));
  }

  void on_replica(Inbound& in) {
    // Only attention roles report as replicas (under CURVE: attention keys).
    if (!in.peer.empty() && curve::peer_kind(in.peer) != "attention")
      throw wire::WireError(wire::ErrorCode::Forbidden, "router: " + in.peer + " may not report as an attention replica (docs/SECURITY.md)");
    const ReplicaReport r = decode<ReplicaReport>(*in.message, replica_report_from_json);
    const uint64_t conflicts = replicas_.conflicts();
    if (replicas_.report(r, Clock::now()))
      spdlog::info("router: attention replica {} at {}{}", r.name, r.endpoint, r.zone.empty() ? "" : " (zone " + r.zone + ")");
    else if (replicas_.conflicts() > conflicts && replicas_.conflicts() % 100 == 1)
      spdlog::error("router: two attention replicas report the name '{}' ({} is refused): give each its own attention.name", r.name, r.endpoint);
  }

  void on_host_answer(int socket, const wire::Message& m) {
    auto h = host_of_socket_.find(socket);
    if (h == host_of_socket_.end() || m.header.type != wire::MsgType::Control) return;
    const nlohmann::json j = wire::json_payload(m);
    if (!j.is_object() || !j.contains("experts") || !j["experts"].is_array()) return;  // the answer to leave
    std::vector<int32_t> now;
    for (const auto& e : j["experts"])
      if (e.is_number_integer() && e.get<int64_t>() >= 0 && e.get<int64_t>() < n_experts_) now.push_back(e.get<int32_t>());
    const uint64_t generation = j.contains("generation") && j["generation"].is_number_unsigned() ? j["generation"].get<uint64_t>() : 0;
    execute(members_->holds(h->second, now, generation));
  }

  // Under CURVE, who may do what: stats for every admitted key; drain and
  // rebalance for the operator (admin); a host's leaving for that host or the operator.
  void authorize(const Inbound& in, const RouterCommand& c) const {
    if (in.peer.empty() || c.kind == RouterCommandKind::Stats || c.kind == RouterCommandKind::Replicas ||
        curve::peer_kind(in.peer) == "admin")
      return;
    if (c.kind == RouterCommandKind::Leaving && in.peer == "expert-host/" + c.host) return;
    throw wire::WireError(wire::ErrorCode::Forbidden, "router: " + in.peer + " may not send this command (docs/SECURITY.md)");
  }

  void on_control(Inbound& in) {
    const RouterCommand c = decode<RouterCommand>(*in.message, router_command_from_json);
    authorize(in, c);
    nlohmann::json r;
    const auto now = Clock::now();
    try {
      switch (c.kind) {
        case RouterCommandKind::Stats:
          r = members_->stats();
          r["dispatchers"] = subscribers_.size();
          r["errors"] = errors_;
          r["bad_frames"] = transport_.bad_frames();
          r["refused_connections"] = curve::refused();  // CURVE: keys not in the keyring or not allowed here
          r["refused_hosts"] = refused_hosts_;         // reports under a key that is not that host's
          r["attention_replicas"] = to_json(replicas_.list())["replicas"];
          r["replica_name_conflicts"] = replicas_.conflicts();
          break;
        case RouterCommandKind::Replicas:
          r = to_json(replicas_.list());
          break;
        case RouterCommandKind::Rebalance: {
          nlohmann::json moves;
          execute(members_->rebalance(&moves));
          last_rebalance_ = now;
          r["moves"] = moves;
          break;
        }
        case RouterCommandKind::Drain: {
          std::vector<int32_t> reassigned;
          execute(members_->drain(c.host, now, &reassigned));
          r["draining"] = c.host;
          r["reassigned"] = reassigned;
          break;
        }
        case RouterCommandKind::Leaving:
          execute(members_->leaving(c.host, now));
          r["leaving"] = c.host;
          break;
      }
    } catch (const std::invalid_argument& e) {
      throw wire::WireError(wire::ErrorCode::Failed, e.what());
    }
    transport_.reply(std::move(in.routing), json_message(wire::MsgType::Control, in.message->header.request_id, r));
  }

  void execute(const Actions& a) {
    for (int id : a.connect) {
      HostEntry* h = members_->placement().host(id);
      if (!h) continue;
      h->socket = transport_.connect(h->endpoint, /*monitor=*/true, "expert-host", h->name);
      host_of_socket_[h->socket] = id;
    }
    for (const auto& c : a.commands) {
      int socket = c.socket;
      if (!socket)
        if (const HostEntry* h = members_->placement().host(c.host)) socket = h->socket;
      if (socket) transport_.send(socket, json_message(wire::MsgType::Control, next_command_++, to_json(c.command)));
    }
    for (int s : a.close_sockets) {
      transport_.disconnect(s);
      host_of_socket_.erase(s);
    }
    if (a.publish) {
      publish();
      if (metrics_) update_metrics();  // membership shows in the metrics with the table, not a tick later
    }
  }

  // The current table to every dispatcher.
  void publish() {
    // A router just started knows no host yet: a table from it would take every
    // expert away from dispatchers that still hold a good one. It publishes once
    // every expert has a host again, or the hosts had their heartbeat timeout to say Hello.
    if (!settled_) return;
    const nlohmann::json t = to_json(members_->table());
    for (const auto& [who, sub] : subscribers_) transport_.reply(routing_of(who), json_message(wire::MsgType::Table, 0, t));
    last_publish_ = Clock::now();
    m_version_->Set(static_cast<double>(members_->version()));
  }

  void on_tick() {
    const auto now = Clock::now();
    if (!settled_ && (members_->placement().uncovered().empty() || now - started_ >= opts_.heartbeat_timeout)) {
      settled_ = true;
      spdlog::info("router: publishing the placement table ({} experts without a host)", members_->placement().uncovered().size());
      publish();
    }
    execute(members_->tick(now));
    if (opts_.rebalance_interval.count() > 0 && now - last_rebalance_ > opts_.rebalance_interval) {
      execute(members_->rebalance(nullptr));
      last_rebalance_ = now;
    }
    if (const size_t gone = replicas_.expire(now)) spdlog::info("router: {} attention replica(s) silent for {} ms left the list", gone, opts_.replica_timeout.count());
    for (auto it = subscribers_.begin(); it != subscribers_.end();)
      it = now - it->second.last_seen > kSubscriberTimeout ? subscribers_.erase(it) : std::next(it);
    if (now - last_publish_ >= kRepublish) publish();
    update_metrics();
  }

  void update_metrics() {
    const uint64_t changes = members_->membership_changes(), moves = members_->moves();
    if (changes > seen_changes_) m_membership_->Increment(static_cast<double>(changes - seen_changes_));
    if (moves > seen_moves_) m_moves_->Increment(static_cast<double>(moves - seen_moves_));
    seen_changes_ = changes;
    seen_moves_ = moves;
    const uint64_t wire_errors = errors_ + transport_.bad_frames();
    if (wire_errors > seen_wire_errors_) m_wire_errors_->Increment(static_cast<double>(wire_errors - seen_wire_errors_));
    seen_wire_errors_ = wire_errors;
    const uint64_t curve_refused = curve::refused();
    if (curve_refused > seen_curve_refused_) m_curve_refused_->Increment(static_cast<double>(curve_refused - seen_curve_refused_));
    seen_curve_refused_ = curve_refused;
    const Placement& p = members_->placement();
    for (const auto& [id, h] : p.hosts())
      m_up_->Add({{"host", h.name}}).Set(h.state == HostState::Ready ? 1.0 : h.state == HostState::Draining ? 0.5 : 0.0);
    m_uncovered_->Set(static_cast<double>(p.uncovered().size()));
    for (const std::string& z : p.zones())
      m_zone_uncovered_->Add({{"zone", z}}).Set(static_cast<double>(p.uncovered_in_zone(z).size()));
    m_dispatchers_->Set(static_cast<double>(subscribers_.size()));
    m_replicas_->Set(static_cast<double>(replicas_.size()));
  }

  struct Subscriber {
    DispatcherHello hello;
    Clock::time_point last_seen;
  };

  RouterOptions opts_;
  Transport transport_;
  std::promise<std::string>* bound_;
  std::string* metrics_url_;
  int64_t n_experts_ = 0;
  std::unique_ptr<Membership> members_;
  std::map<int, int> host_of_socket_;
  std::map<Identity, Subscriber> subscribers_;
  uint64_t next_command_ = 1, errors_ = 0, seen_changes_ = 0, seen_moves_ = 0, seen_wire_errors_ = 0;
  Clock::time_point last_rebalance_, last_publish_, started_;
  bool settled_ = false;  // hosts have had their chance to (re)join: tables go out
  std::unique_ptr<RoleMetrics> metrics_;
  prometheus::Counter *m_membership_ = nullptr, *m_moves_ = nullptr, *m_wire_errors_ = nullptr, *m_refused_ = nullptr, *m_curve_refused_ = nullptr;
  uint64_t seen_curve_refused_ = 0, refused_hosts_ = 0;
  prometheus::Family<prometheus::Counter>* m_suspicions_ = nullptr;
  std::vector<prometheus::Counter*> m_routed_;
  prometheus::Family<prometheus::Gauge>*m_up_ = nullptr, *m_zone_uncovered_ = nullptr;
  prometheus::Gauge *m_uncovered_ = nullptr, *m_version_ = nullptr, *m_dispatchers_ = nullptr, *m_replicas_ = nullptr;
  ReplicaRegistry replicas_{opts_.replica_timeout};
};

}  // namespace

RouterService::RouterService(RouterOptions opts, zmq::context_t& ctx) : opts_(std::move(opts)), ctx_(ctx) {}

RouterService::~RouterService() { stop(); }

std::string RouterService::start() {
  std::promise<std::string> bound;
  auto f = bound.get_future();
  actor_ = actor_system().spawn<RouterActor>(opts_, &ctx_, &bound, &metrics_url_);
  endpoint_ = f.get();
  return endpoint_;
}

bool RouterService::drain(std::chrono::milliseconds deadline) { return drain_actor(actor_, deadline); }

void RouterService::stop() { stop_actor(actor_); }

}  // namespace moemesh
