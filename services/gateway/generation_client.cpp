#include "generation_client.h"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/mesh_actor.h"
#include "actors/transport.h"
#include "prefix_index.h"
#include "services/router/api.h"

namespace moemesh {

ReplicaRouting replica_routing(const GatewayOptions& o) {
  ReplicaRouting r;
  const auto p = routing_policy_from_name(o.routing);
  if (!p) throw std::invalid_argument("gateway.routing is cache_aware, least_load or round_robin, not '" + o.routing + "'");
  r.policy = *p;
  if (o.balance_abs < 0) throw std::invalid_argument("gateway.balance_abs must be >= 0");
  if (!(o.balance_rel >= 1.0)) throw std::invalid_argument("gateway.balance_rel must be >= 1");
  if (o.stall_floor_ms < 100) throw std::invalid_argument("gateway.stall_floor_ms must be >= 100");
  if (o.replica_wait_ms < 0) throw std::invalid_argument("gateway.replica_wait_ms must be >= 0");
  r.balance = {o.balance_abs, o.balance_rel};
  r.stall_floor = std::chrono::milliseconds(o.stall_floor_ms);
  r.wait_for_replica = std::chrono::milliseconds(o.replica_wait_ms);
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;
using submit_atom = caf::atom_constant<caf::atom("submit")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using StatsCallback = std::shared_ptr<std::function<void(const nlohmann::json&)>>;

// Request ids on a replica's connection: attempts count from 1, stats requests
// from 2^62, and cancel acknowledgements come back as 0 (ignored).
constexpr uint64_t kFirstStats = uint64_t{1} << 62;
constexpr uint64_t kCancelAcks = 0;
constexpr auto kTick = std::chrono::milliseconds(100);
constexpr auto kStatsEvery = std::chrono::milliseconds(250);
constexpr auto kListEvery = std::chrono::milliseconds(500);
// A replica the router stopped listing is forgotten once it is also unusable this long.
constexpr auto kForget = std::chrono::seconds(5);

struct Submission {
  uint64_t id = 0;
  GenerationRequest request;
  GenerationClient::OnUpdate on_update;
};
using SubmissionPtr = std::shared_ptr<Submission>;

}  // namespace
}  // namespace moemesh

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(moemesh::SubmissionPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(moemesh::StatsCallback)

namespace moemesh {
namespace {

TokensUpdate error_update(wire::ErrorCode code, std::string what) {
  TokensUpdate u;
  u.finish = FinishReason::Error;
  u.code = code;
  u.error = std::move(what);
  return u;
}

class ClientActor : public caf::event_based_actor {
 public:
  ClientActor(caf::actor_config& c, zmq::context_t* ctx, GatewayUpstream up, ReplicaRouting routing)
      : caf::event_based_actor(c), transport_(*ctx), upstream_(std::move(up)), routing_(routing) {}

  caf::behavior make_behavior() override {
    transport_.start("", caf::actor_cast<caf::actor>(this));
    for (const auto& ep : upstream_.attention) add_replica(ep, ep, true);
    if (!upstream_.router.empty()) router_socket_ = transport_.connect(upstream_.router, false, "router");
    delayed_send(this, kTick, tick_atom::value);
    return {
        [this](submit_atom, const SubmissionPtr& s) {
          Stream& st = streams_[s->id];
          st.sub = s;
          place(s->id);
        },
        [this](cancel_atom, uint64_t id) { cancel(id); },
        [this](stats_atom, const StatsCallback& cb) { (*cb)(aggregate()); },
        [this](tick_atom) {
          on_tick();
          delayed_send(this, kTick, tick_atom::value);
        },
        [this](inbound_atom, const InboundPtr& in) { on_inbound(*in); },
    };
  }

  void on_exit() override {
    transport_.stop();
    for (auto& [id, st] : streams_) st.sub->on_update(error_update(wire::ErrorCode::ShuttingDown, "the gateway is shutting down"));
    streams_.clear();
  }

 private:
  struct Replica {
    std::string name, endpoint;
    int socket = 0;
    bool fixed = false;     // configured: never forgotten
    bool down = false;      // its connection dropped, until it is back
    bool hung = false;      // silent past its deadline, until it speaks again
    bool draining = false;  // its stats say it drains, or it refused as shutting down
    Clock::time_point heard, listed, stats_sent, unusable_since;
    bool stats_out = false;
    double rtt_ms = 0;      // its recent stats round trips (moving average)
    int64_t inflight = 0, reported = 0;
    uint64_t requests = 0, moved_away = 0;
    nlohmann::json stats;   // its last stats answer
    PrefixIndex index;
    bool usable() const { return !down && !hung && !draining; }
    const char* state() const { return down ? "down" : hung ? "hung" : draining ? "draining" : "ready"; }
  };

  struct Stream {
    SubmissionPtr sub;
    std::vector<int32_t> got;     // tokens delivered so far
    std::string replica;          // where it runs (empty: waiting for one)
    uint64_t attempt = 0;         // its request id there
    std::set<std::string> avoid;  // replicas it failed on
    bool waiting = false;
    bool cancelled = false;       // the caller cancelled: it is never placed again
    Clock::time_point waiting_since;
  };

  Replica& add_replica(const std::string& name, const std::string& endpoint, bool fixed) {
    Replica& r = replicas_[name];
    r.name = name;
    r.endpoint = endpoint;
    r.fixed = r.fixed || fixed;
    r.socket = transport_.connect(endpoint, /*monitor=*/true, "attention");
    r.heard = r.listed = Clock::now();
    by_socket_[r.socket] = name;
    spdlog::info("gateway: attention replica {} at {}", name, endpoint);
    return r;
  }

  void forget(Replica& r) {
    transport_.disconnect(r.socket);
    by_socket_.erase(r.socket);
    r.socket = 0;
  }

  Replica* replica_of_socket(int socket) {
    auto it = by_socket_.find(socket);
    if (it == by_socket_.end()) return nullptr;
    auto r = replicas_.find(it->second);
    return r == replicas_.end() ? nullptr : &r->second;
  }

  std::chrono::milliseconds deadline(const Replica& r) const {
    return std::max(routing_.stall_floor, std::chrono::milliseconds(static_cast<int64_t>(8 * r.rtt_ms)));
  }

  // ---- Routing ----

  void place(uint64_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream& st = it->second;
    if (st.cancelled) {
      TokensUpdate u;
      u.finish = FinishReason::Cancelled;
      return finish(it, u);
    }
    const GenerationRequest& req = st.sub->request;
    std::vector<Replica*> usable;
    for (auto& [name, r] : replicas_)
      if (r.usable() && r.socket && !st.avoid.count(name)) usable.push_back(&r);
    if (usable.empty())
      for (auto& [name, r] : replicas_)
        if (r.usable() && r.socket) usable.push_back(&r);
    if (usable.empty()) {
      if (!st.waiting) {
        st.waiting = true;
        st.waiting_since = Clock::now();
      }
      return;
    }
    std::vector<int32_t> context = req.prompt;
    context.insert(context.end(), st.got.begin(), st.got.end());
    std::vector<ReplicaCandidate> c;
    for (Replica* r : usable) {
      ReplicaCandidate cand;
      cand.load = std::max(r->inflight, r->reported);
      if (routing_.policy == RoutingPolicy::CacheAware) cand.matched = r->index.match(context);
      c.push_back(cand);
    }
    const ReplicaChoice choice = choose_replica(routing_.policy, c, cursor_, routing_.balance);
    Replica& r = *usable[choice.index];
    ++(choice.cached ? routed_cached_ : routed_other_);

    GenerationRequest send = req;
    const auto n = static_cast<int64_t>(st.got.size());
    if (n > 0) {
      // Resumed: what it said so far becomes prompt, counted against its limits.
      send.prompt = context;
      send.resumed = n;
      send.max_new_tokens = req.max_new_tokens - n;
      send.min_tokens = std::max<int64_t>(0, req.min_tokens - n);
      send.sampling.seed += static_cast<uint64_t>(n);  // sampled streams go on from the same text, not the same draws
      if (send.max_new_tokens <= 0) {
        TokensUpdate u;
        u.finish = FinishReason::Length;
        finish(it, u);
        return;
      }
    }
    st.waiting = false;
    st.replica = r.name;
    st.attempt = next_attempt_++;
    attempts_[st.attempt] = id;
    ++r.inflight;
    ++r.requests;
    r.index.insert(context);
    transport_.send(r.socket, wire::json_message(wire::MsgType::Generate, st.attempt, to_json(send)));
  }

  // Takes a stream off its replica and places it again (resumption).
  void move_away(uint64_t id, const std::string& reason, bool cancel_there) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream& st = it->second;
    auto r = replicas_.find(st.replica);
    if (r != replicas_.end()) {
      --r->second.inflight;
      ++r->second.moved_away;
      if (cancel_there && r->second.socket)
        transport_.send(r->second.socket, wire::json_message(wire::MsgType::Control, kCancelAcks,
                                                             to_json(AttentionCommand{AttentionCommandKind::Cancel, st.attempt})));
      st.avoid.insert(st.replica);
    }
    attempts_.erase(st.attempt);
    st.attempt = 0;
    st.replica.clear();
    ++resumed_[reason];
    spdlog::info("gateway: stream {} resumes elsewhere after {} tokens ({})", id, st.got.size(), reason);
    place(id);
  }

  void move_all_away(Replica& r, const std::string& reason, bool cancel_there) {
    std::vector<uint64_t> ids;
    for (const auto& [id, st] : streams_)
      if (st.replica == r.name && st.attempt) ids.push_back(id);
    for (uint64_t id : ids) move_away(id, reason, cancel_there);
  }

  void finish(std::map<uint64_t, Stream>::iterator it, TokensUpdate u) {
    Stream& st = it->second;
    if (st.attempt) {
      attempts_.erase(st.attempt);
      auto r = replicas_.find(st.replica);
      if (r != replicas_.end()) {
        --r->second.inflight;
        // What it holds now: the prompt and the answer (the prefix cache keeps both).
        std::vector<int32_t> all = st.sub->request.prompt;
        all.insert(all.end(), st.got.begin(), st.got.end());
        r->second.index.insert(all);
      }
    }
    u.cached_tokens = std::min<int64_t>(u.cached_tokens, static_cast<int64_t>(st.sub->request.prompt.size()));
    auto sub = st.sub;
    streams_.erase(it);
    sub->on_update(u);
  }

  void cancel(uint64_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream& st = it->second;
    st.cancelled = true;  // should its replica fail before the Cancelled arrives, it ends rather than resumes
    if (!st.attempt) {  // not on any replica yet
      TokensUpdate u;
      u.finish = FinishReason::Cancelled;
      finish(it, u);
      return;
    }
    auto r = replicas_.find(st.replica);
    if (r != replicas_.end() && r->second.socket)
      transport_.send(r->second.socket, wire::json_message(wire::MsgType::Control, kCancelAcks,
                                                           to_json(AttentionCommand{AttentionCommandKind::Cancel, st.attempt})));
  }

  // ---- What arrives ----

  void on_inbound(const Inbound& in) {
    if (in.socket == router_socket_) {
      if (in.message) on_router(*in.message);
      return;
    }
    Replica* r = replica_of_socket(in.socket);
    if (!r) return;
    if (in.event) {
      if (*in.event == PeerEvent::Down) {
        if (!r->down) spdlog::warn("gateway: attention replica {} dropped its connection", r->name);
        r->down = true;
        r->stats_out = false;
        move_all_away(*r, "disconnect", false);
      } else {
        r->down = false;
        heard(*r);
        retry_waiting();
      }
      return;
    }
    heard(*r);
    on_reply(*r, *in.message);
  }

  void heard(Replica& r) {
    r.heard = Clock::now();
    if (r.hung) {
      spdlog::info("gateway: attention replica {} answers again", r.name);
      r.hung = false;
      r.stats_out = false;  // a fresh question, not the one it left unanswered
      retry_waiting();
    }
  }

  void on_reply(Replica& r, const wire::Message& m) {
    if (m.header.type == wire::MsgType::Control) {
      if (m.header.request_id < kFirstStats) return;  // cancel acknowledgements
      if (r.stats_out) {
        const double rtt = std::chrono::duration<double, std::milli>(Clock::now() - r.stats_sent).count();
        r.rtt_ms = r.rtt_ms == 0 ? rtt : 0.9 * r.rtt_ms + 0.1 * rtt;
      }
      r.stats_out = false;
      try {
        r.stats = wire::json_payload(m);
        r.reported = r.stats.value("running", int64_t{0}) + r.stats.value("waiting", int64_t{0});
        const bool was = r.draining;
        r.draining = r.stats.value("draining", false);
        if (was && !r.draining) retry_waiting();
      } catch (const std::exception&) {
        r.stats = nullptr;
      }
      return;
    }
    auto a = attempts_.find(m.header.request_id);
    if (a == attempts_.end()) return;  // a stale attempt (moved away) or a late reply
    auto it = streams_.find(a->second);
    if (it == streams_.end() || it->second.replica != r.name) return;
    TokensUpdate u;
    if (m.header.type == wire::MsgType::Error) {
      u = tokens_update_from_error(m);
    } else if (m.header.type == wire::MsgType::Tokens) {
      try {
        u = tokens_update_from_json(wire::json_payload(m));
      } catch (const std::exception& e) {
        u = error_update(wire::ErrorCode::BadFrame, std::string("malformed Tokens message: ") + e.what());
      }
    } else {
      return;
    }
    Stream& st = it->second;
    st.got.insert(st.got.end(), u.tokens.begin(), u.tokens.end());
    // A replica shutting down (refusing, or cutting a stream at its drain
    // deadline) or full: the stream goes on elsewhere when there is somewhere.
    const bool draining = u.finish == FinishReason::Error && u.code == wire::ErrorCode::ShuttingDown;
    const bool full = u.finish == FinishReason::Error && u.code == wire::ErrorCode::Overloaded && other_usable(st, r.name);
    if (draining || full) {
      if (draining) r.draining = true;
      if (!u.tokens.empty()) {
        TokensUpdate part = u;
        part.finish = FinishReason::None;
        part.error.clear();
        part.code = wire::ErrorCode::None;
        st.sub->on_update(part);
      }
      move_away(it->first, draining ? "draining" : "overloaded", false);
      return;
    }
    if (u.finished()) return finish(it, u);
    st.sub->on_update(u);
  }

  bool other_usable(const Stream& st, const std::string& except) const {
    for (const auto& [name, r] : replicas_)
      if (name != except && r.usable() && r.socket && !st.avoid.count(name)) return true;
    return false;
  }

  void on_router(const wire::Message& m) {
    if (m.header.type != wire::MsgType::Control) return;
    ReplicaList list;
    try {
      list = replica_list_from_json(wire::json_payload(m));
    } catch (const std::exception& e) {
      spdlog::warn("gateway: the router's replica list: {}", e.what());
      return;
    }
    const auto now = Clock::now();
    for (const auto& rep : list.replicas) {
      // A configured endpoint the router also lists is one replica, under its name.
      for (auto it = replicas_.begin(); it != replicas_.end(); ++it)
        if (it->first != rep.name && it->second.fixed && it->second.endpoint == rep.endpoint && it->first == it->second.endpoint) {
          if (replicas_.count(rep.name)) {
            // Known under its name already (at another endpoint): the configured entry goes.
            Replica& dup = it->second;
            dup.down = true;
            move_all_away(dup, "disconnect", false);
            forget(dup);
            replicas_.erase(it);
            break;
          }
          Replica moved = std::move(it->second);
          replicas_.erase(it);
          moved.name = rep.name;
          by_socket_[moved.socket] = rep.name;
          for (auto& [id, st] : streams_) {
            if (st.replica == rep.endpoint) st.replica = rep.name;
            if (st.avoid.erase(rep.endpoint)) st.avoid.insert(rep.name);
          }
          replicas_.emplace(rep.name, std::move(moved));
          break;
        }
      auto it = replicas_.find(rep.name);
      if (it == replicas_.end()) {
        add_replica(rep.name, rep.endpoint, false);
        retry_waiting();
        it = replicas_.find(rep.name);
      } else if (it->second.endpoint != rep.endpoint) {
        // Restarted elsewhere under the same name: its old streams are gone with the old process.
        Replica& r = it->second;
        spdlog::info("gateway: attention replica {} moved from {} to {}", r.name, r.endpoint, rep.endpoint);
        forget(r);
        r.endpoint = rep.endpoint;
        r.down = r.hung = r.draining = false;
        r.stats_out = false;
        r.index = PrefixIndex();
        r.socket = transport_.connect(r.endpoint, true, "attention");
        by_socket_[r.socket] = r.name;
        r.heard = now;
        // Placed again only now, so none goes to the old process's socket.
        move_all_away(r, "disconnect", false);
        retry_waiting();
      }
      it->second.listed = now;  // (whether it drains comes from its own stats answers, fresher than the list)
    }
    for (auto it = replicas_.begin(); it != replicas_.end();) {
      Replica& r = it->second;
      if (!r.fixed && now - r.listed > kForget && !r.usable() && now - r.unusable_since > kForget && r.inflight == 0) {
        spdlog::info("gateway: forgetting attention replica {} (no longer listed)", r.name);
        forget(r);
        it = replicas_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ---- Time ----

  void on_tick() {
    const auto now = Clock::now();
    if (router_socket_ && now - last_list_ >= kListEvery) {
      last_list_ = now;
      transport_.send(router_socket_, wire::json_message(wire::MsgType::Control, next_list_++,
                                                         to_json(RouterCommand{RouterCommandKind::Replicas, ""})));
    }
    for (auto& [name, r] : replicas_) {
      if (!r.socket) continue;
      if (r.usable()) r.unusable_since = now;
      if (r.down) continue;
      // A replica answers stats from its actor even mid-step: one that leaves
      // a question unanswered past its deadline is hung (stopped, or its link silently gone).
      if (!r.hung && r.stats_out && now - r.stats_sent > deadline(r)) {
        spdlog::warn("gateway: attention replica {} silent for {} ms: taken for hung, its streams resume elsewhere", r.name,
                     std::chrono::duration_cast<std::chrono::milliseconds>(now - r.stats_sent).count());
        r.hung = true;
        move_all_away(r, "stall", true);
      }
      if (!r.stats_out && now - r.stats_sent >= kStatsEvery) {
        r.stats_out = true;
        r.stats_sent = now;
        transport_.send(r.socket, wire::json_message(wire::MsgType::Control, next_stats_++, to_json(AttentionCommand{})));
      }
    }
    // Requests waiting for a replica: placed when one is usable, failed past the wait.
    std::vector<uint64_t> expired;
    for (const auto& [id, st] : streams_)
      if (st.waiting && now - st.waiting_since > routing_.wait_for_replica) expired.push_back(id);
    for (uint64_t id : expired)
      finish(streams_.find(id), error_update(wire::ErrorCode::NoReplica,
                                             "no attention replica could take this request within " +
                                                 std::to_string(routing_.wait_for_replica.count()) + " ms"));
    retry_waiting();
  }

  void retry_waiting() {
    std::vector<uint64_t> ids;
    for (const auto& [id, st] : streams_)
      if (st.waiting) ids.push_back(id);
    for (uint64_t id : ids) place(id);
  }

  // The replicas' last stats summed, and the routing's own counts.
  nlohmann::json aggregate() const {
    nlohmann::json sum = nlohmann::json::object(), reps = nlohmann::json::array();
    bool any = false;
    for (const auto& [name, r] : replicas_) {
      reps.push_back({{"name", name}, {"endpoint", r.endpoint}, {"state", r.state()}, {"inflight", r.inflight},
                      {"requests", r.requests}, {"moved_away", r.moved_away}, {"cached_blocks", r.index.blocks()}});
      if (!r.stats.is_object()) continue;
      // Numbers (gauges) from the replicas serving now; the draft counts, running
      // totals, from every one's last answer (so one that goes away and comes
      // back is not counted twice).
      any = any || r.usable();
      for (const auto& [k, v] : r.stats.items()) {
        if (v.is_number() && r.usable()) sum[k] = sum.value(k, 0.0) + v.get<double>();
        if (v.is_array() && (k == "drafted" || k == "accepted")) {
          auto& a = sum[k];
          if (!a.is_array()) a = nlohmann::json::array();
          for (size_t i = 0; i < v.size(); ++i) {
            if (a.size() <= i) a.push_back(0.0);
            if (v[i].is_number()) a[i] = a[i].get<double>() + v[i].get<double>();
          }
        }
      }
    }
    if (!any) sum = nlohmann::json::object();
    sum["replicas"] = reps;
    sum["resumed"] = resumed_;
    sum["routing"] = {{"policy", routing_policy_name(routing_.policy)}, {"cached", routed_cached_}, {"other", routed_other_}};
    if (!any && replicas_.empty()) return nullptr;
    return sum;
  }

  Transport transport_;
  GatewayUpstream upstream_;
  ReplicaRouting routing_;
  int router_socket_ = 0;
  std::map<std::string, Replica> replicas_;  // by name
  std::map<int, std::string> by_socket_;
  std::map<uint64_t, Stream> streams_;      // by the caller's id
  std::map<uint64_t, uint64_t> attempts_;   // request id on a replica -> stream
  std::map<std::string, uint64_t> resumed_;  // streams moved, by reason
  uint64_t next_attempt_ = 1, next_stats_ = kFirstStats, next_list_ = 1, routed_cached_ = 0, routed_other_ = 0;
  size_t cursor_ = 0;
  Clock::time_point last_list_{};
};

std::atomic<uint64_t> g_next_id{1};

}  // namespace

GenerationClient::GenerationClient(zmq::context_t& ctx, GatewayUpstream upstream, ReplicaRouting routing)
    : actor_(actor_system().spawn<ClientActor>(&ctx, std::move(upstream), routing)) {}

GenerationClient::~GenerationClient() { stop_actor(actor_); }

uint64_t GenerationClient::submit(const GenerationRequest& r, OnUpdate on_update) {
  auto s = std::make_shared<Submission>();
  s->id = g_next_id++;
  s->request = r;
  s->on_update = std::move(on_update);
  caf::anon_send(actor_, submit_atom::value, s);
  return s->id;
}

void GenerationClient::cancel(uint64_t id) { caf::anon_send(actor_, cancel_atom::value, id); }

void GenerationClient::stats(std::function<void(const nlohmann::json&)> done) {
  caf::anon_send(actor_, stats_atom::value, std::make_shared<std::function<void(const nlohmann::json&)>>(std::move(done)));
}

}  // namespace moemesh
