// The expert-host role as an actor: serves Dispatch messages from dispatchers
// on its ROUTER socket (compute on its compute queue), registers with a router
// and heartbeats its load, and loads, unloads or leaves when the router says so.
#include <algorithm>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/compute_queue.h"
#include "actors/curve.h"
#include "actors/drain.h"
#include "actors/mesh_actor.h"
#include "actors/role_metrics.h"
#include "actors/transport.h"
#include "core/model_config.h"
#include "expert_host.h"
#include "services/expert_host/api.h"
#include "services/router/api.h"

namespace moemesh {
namespace {

using wire::json_message;

// Request ids of the messages this host starts towards the router.
constexpr uint64_t kHelloRequest = 1;
constexpr uint64_t kLeavingRequest = 2;

class ExpertHostActor : public caf::event_based_actor {
 public:
  ExpertHostActor(caf::actor_config& c, ExpertHostOptions opts, zmq::context_t* ctx, std::promise<std::string>* bound,
                  std::promise<void>* leave, std::string* metrics_url)
      : caf::event_based_actor(c), opts_(std::move(opts)), transport_(*ctx), bound_(bound), leave_(leave), metrics_url_(metrics_url) {}

  caf::behavior make_behavior() override {
    try {
      const auto load_start = std::chrono::steady_clock::now();
      cfg_ = ModelConfig::load(opts_.model);
      ckpt_ = std::make_unique<Checkpoint>(opts_.model);
      host_ = std::make_unique<ExpertHost>(cfg_, *ckpt_, opts_.experts, opts_.device, opts_.compute);
      const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
      held_ = host_->experts();
      if (opts_.capacity < 0) opts_.capacity = cfg_.n_routed_experts;
      // Until the metrics exist (just below), dispatches wait in the mailbox instead.
      transport_.set_shortcut([this](const Inbound& in, wire::Message& reply) {
        return ready_.load(std::memory_order_acquire) && serve_dispatch(in, reply);
      });
      endpoint_ = transport_.start(opts_.bind, caf::actor_cast<caf::actor>(this));
      if (!opts_.advertise.empty()) endpoint_ = opts_.advertise;  // e.g. behind 0.0.0.0 in a pod
      if (opts_.name.empty()) opts_.name = endpoint_;
      make_metrics(load_seconds);
      ready_.store(true, std::memory_order_release);
      if (!opts_.router.empty()) {
        router_ = transport_.connect(opts_.router, false, "router");
        transport_.send(router_, json_message(wire::MsgType::Hello, kHelloRequest, to_json(report())));
      }
      bound_->set_value(endpoint_);
    } catch (...) {
      bound_->set_exception(std::current_exception());
      quit();
      return {};
    }
    spdlog::info("expert host {}: {} experts on {}{}{}", opts_.name, held_.size(), endpoint_,
                 opts_.zone.empty() ? "" : " in zone " + opts_.zone, opts_.router.empty() ? "" : ", registered with " + opts_.router);
    if (router_) delayed_send(this, opts_.heartbeat, tick_atom::value);
    return {
        [this](inbound_atom, const InboundPtr& in) {
          received(in.get());
          on_inbound(in);
        },
        [this](run_atom, const Continuation& f) {
          received(f.get());
          (*f)();
        },
        [this](drain_atom, const DrainDone& done, int64_t deadline_ms) { start_drain(done, deadline_ms); },
        [this](tick_atom) {
          if (leaving_) return;
          transport_.send(router_, json_message(wire::MsgType::Heartbeat, 0, to_json(report())));
          expert_rows_.clear();
          delayed_send(this, opts_.heartbeat, tick_atom::value);
        },
    };
  }

  void on_exit() override {
    compute_.reset();  // finishes a load in flight; its reply still goes out
    transport_.stop();  // finishes the dispatch in flight, and sends its reply
    // A pending delayed message (the drain fallback) keeps this object alive
    // until it fires: let go of the experts' weights now.
    host_.reset();
    ckpt_.reset();
  }

 private:
  void make_metrics(double load_seconds) {
    metrics_ = std::make_unique<RoleMetrics>("expert-host", opts_.name, opts_.metrics);
    transport_.count_drops_in(*metrics_);
    *metrics_url_ = metrics_->url();
    m_dispatches_ = &metrics_->counter("moemesh_expert_dispatches_total", "Dispatches computed").Add({});
    m_rows_ = &metrics_->counter("moemesh_expert_rows_total", "Token rows computed").Add({});
    m_refused_ = &metrics_->counter("moemesh_expert_dispatches_refused_total", "Dispatches refused, by reason");
    m_loaded_ = &metrics_->gauge("moemesh_experts_loaded", "Routed experts held (the same ids on every MoE layer)").Add({});
    m_compute_ = &metrics_->histogram("moemesh_expert_compute_seconds", "Time to compute one dispatch").Add({}, latency_buckets());
    m_wire_errors_ = &metrics_->counter("moemesh_wire_errors_total", "Malformed or refused frames").Add({});
    m_loaded_->Set(static_cast<double>(held_.size()));
    metrics_->gauge("moemesh_model_load_seconds", "Time this role took to load its part of the model").Add({}).Set(load_seconds);
  }

  // What the transport thread served since the last look (it serves without
  // telling the actor: a message per dispatch would wake an actor thread for
  // every MoE layer of every token, on cores the compute needs).
  void absorb_counts() {
    std::lock_guard<std::mutex> serving(serve_mu_);
    dispatches_ = host_->dispatches();
    rows_ = host_->rows();
    if (expert_rows_.size() < static_cast<size_t>(cfg_.n_routed_experts)) expert_rows_.resize(cfg_.n_routed_experts, 0);
    for (const auto& [e, n] : host_->take_expert_rows()) expert_rows_[e] += n;
  }

  HostReport report() {
    absorb_counts();
    HostReport r;
    r.name = opts_.name;
    r.endpoint = endpoint_;
    r.zone = opts_.zone;
    r.experts = held_;
    r.generation = generation_;
    r.capacity = opts_.capacity;
    r.dispatches = dispatches_;
    r.rows = rows_;
    for (size_t e = 0; e < expert_rows_.size(); ++e)
      if (expert_rows_[e]) r.expert_rows.emplace_back(static_cast<int32_t>(e), expert_rows_[e]);
    return r;
  }

  // SIGTERM: the router is told this host is stopping, sends it no more work
  // and says `leave` once every dispatcher has the table saying so. A router
  // that stays silent is taken for gone: the host then stops once its own work is done.
  void start_drain(const DrainDone& done, int64_t deadline_ms) {
    spdlog::info("expert host {}: stopping ({} dispatches running)", opts_.name, inflight_.load());
    drain_.start(done);
    draining_ = true;  // from now on the transport thread says when a dispatch ends
    leaving_ = true;  // no more heartbeats
    if (!router_) return settle();
    transport_.send(router_, json_message(wire::MsgType::Control, kLeavingRequest,
                                          to_json(RouterCommand{RouterCommandKind::Leaving, opts_.name})));
    const auto silent = std::chrono::milliseconds(std::min<int64_t>(5000, std::max<int64_t>(deadline_ms - 500, 0)));
    delayed_send(this, silent, run_atom::value, continuation([this] {
      router_gone_ = true;
      settle();
    }));
  }

  void settle() {
    stopping_ = left_ || router_gone_;  // before reading inflight_: a dispatch counted after this sees it
    drain_.settle(inflight_ == 0 && (!router_ || left_ || router_gone_));
  }

  void on_inbound(const InboundPtr& in) {
    if (in->socket != 0 || !in->message) return;  // the router's answers to Hello/Heartbeat
    const wire::Header& h = in->message->header;
    if (h.type == wire::MsgType::Control) return on_control(in);
    if (h.type == wire::MsgType::Hello) {
      transport_.reply(std::move(in->routing), json_message(wire::MsgType::Hello, h.request_id, to_json(report())));
      return;
    }
    wire::Message reply;
    if (serve_dispatch(*in, reply)) {  // one that arrived before the shortcut was ready
      transport_.reply(std::move(in->routing), std::move(reply));
      return;
    }
    m_wire_errors_->Increment();
    transport_.reply(std::move(in->routing),
                     wire::error_message(h.request_id, wire::ErrorCode::Unsupported,
                                         "expert host: cannot handle message type " + std::to_string(static_cast<int>(h.type))));
  }

  // Dispatches are computed on the transport's thread as they arrive and
  // answered from it: no hop through this actor or a compute thread. The
  // actor reads the counts when it reports (absorb_counts).
  bool serve_dispatch(const Inbound& in, wire::Message& reply) {
    const wire::Message& m = *in.message;
    if (m.header.type != wire::MsgType::Dispatch) return false;
    std::lock_guard<std::mutex> serving(serve_mu_);  // the actor serves the few that came before the shortcut
    ++inflight_;
    if (stopping_) {
      m_refused_->Add({{"reason", "shutting_down"}}).Increment();
      reply = wire::error_message(m.header.request_id, wire::ErrorCode::ShuttingDown,
                                  "expert host " + opts_.name + ": stopping; send this elsewhere");
      done_serving();
      return true;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t rows_before = host_->rows();
    bool not_held = false;
    try {
      reply = host_->handle(m);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      m_compute_->Observe(seconds);
      reply.header.aux = static_cast<uint32_t>(std::min(seconds * 1e6, 4.0e9));  // Combine: compute µs (api.h)
      m_dispatches_->Increment();
      m_rows_->Increment(static_cast<double>(host_->rows() - rows_before));
    } catch (const wire::WireError& e) {
      not_held = e.code() == wire::ErrorCode::NotHeld;
      if (!not_held) {
        spdlog::warn("expert host: {}", e.what());
        m_wire_errors_->Increment();
      }
      reply = wire::error_message(m.header.request_id, e.code(), e.what());
    }
    if (not_held) m_refused_->Add({{"reason", "not_held"}}).Increment();
    done_serving();
    return true;
  }

  // Only a draining actor waits to hear that a dispatch ended (seq_cst: either
  // it reads the decrement when it settles, or this thread reads its flag).
  void done_serving() {
    --inflight_;
    if (draining_) run_in(caf::actor_cast<caf::actor>(this), [this] { settle(); });
  }

  void on_control(const InboundPtr& in) {
    const wire::Header& h = in->message->header;
    // Under CURVE, commands (load, unload, drain, leave, stats) come from the router or the operator only.
    const std::string_view kind = curve::peer_kind(in->peer);
    if (!in->peer.empty() && kind != "router" && kind != "admin") {
      transport_.reply(std::move(in->routing), wire::error_message(h.request_id, wire::ErrorCode::Forbidden,
                                                                   "expert host: " + in->peer + " may not send commands (docs/SECURITY.md)"));
      return;
    }
    HostCommand c;
    try {
      c = host_command_from_json(wire::json_payload(*in->message));
    } catch (const std::exception& e) {
      const auto code = dynamic_cast<const wire::WireError*>(&e) ? wire::ErrorCode::BadFrame : wire::ErrorCode::Unsupported;
      transport_.reply(std::move(in->routing), wire::error_message(h.request_id, code, std::string("expert host: ") + e.what()));
      return;
    }
    if (c.kind == HostCommandKind::Leave) {
      spdlog::info("expert host {}: drained, leaving", opts_.name);
      leaving_ = true;
      transport_.reply(std::move(in->routing), json_message(wire::MsgType::Control, h.request_id, {{"cmd", "leave"}, {"ok", true}}));
      if (!left_) leave_->set_value();  // a repeated leave must not throw
      left_ = true;
      settle();
      return;
    }
    std::vector<int32_t> ids;
    for (int32_t e : c.experts)
      if (e >= 0 && e < cfg_.n_routed_experts) ids.push_back(e);
    ExpertHost* host = host_.get();
    Transport* t = &transport_;
    auto self = caf::actor_cast<caf::actor>(this);
    const int64_t capacity = opts_.capacity;
    const bool load = c.kind == HostCommandKind::Load;
    compute_->post([in, host, t, self, this, load, ids, capacity, id = h.request_id] {
      std::vector<int32_t> want = ids;
      if (load) {
        // Never beyond capacity.
        const int64_t room = capacity - static_cast<int64_t>(host->experts().size());
        if (room < static_cast<int64_t>(want.size())) want.resize(static_cast<size_t>(std::max<int64_t>(room, 0)));
      }
      const std::vector<int32_t> now = load ? host->load(want) : host->unload(want);
      spdlog::info("expert host: {} {} experts, holds {}", load ? "loaded" : "unloaded", want.size(), now.size());
      // Answered from the actor once held_ is updated, so no later heartbeat reports the old set.
      run_in(self, [this, t, in, id, load, now] {
        held_ = now;
        ++generation_;
        m_loaded_->Set(static_cast<double>(now.size()));
        t->reply(std::move(in->routing), json_message(wire::MsgType::Control, id,
                                                      {{"cmd", load ? "load" : "unload"}, {"experts", now}, {"generation", generation_}}));
      });
    });
  }

  ExpertHostOptions opts_;
  Transport transport_;
  std::promise<std::string>* bound_;
  std::promise<void>* leave_;
  std::string* metrics_url_;
  std::unique_ptr<RoleMetrics> metrics_;
  prometheus::Counter *m_dispatches_ = nullptr, *m_rows_ = nullptr, *m_wire_errors_ = nullptr;
  prometheus::Family<prometheus::Counter>* m_refused_ = nullptr;
  prometheus::Gauge* m_loaded_ = nullptr;
  prometheus::Histogram* m_compute_ = nullptr;
  std::unique_ptr<ComputeQueue> compute_ = std::make_unique<ComputeQueue>();
  ModelConfig cfg_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<ExpertHost> host_;
  std::vector<int32_t> held_;
  std::vector<uint64_t> expert_rows_;  // rows per expert since the last heartbeat
  std::string endpoint_;
  int router_ = 0;
  bool leaving_ = false, left_ = false, router_gone_ = false;
  // Dispatches the transport thread is serving.
  std::atomic<int64_t> inflight_{0};
  std::atomic<bool> stopping_{false};  // set by the actor; the transport thread then refuses dispatches
  std::atomic<bool> draining_{false};  // set by the actor at SIGTERM
  std::atomic<bool> ready_{false};     // metrics made: the transport thread may serve dispatches
  std::mutex serve_mu_;
  DrainState drain_;
  uint64_t dispatches_ = 0, rows_ = 0, generation_ = 0;
};

}  // namespace

ExpertHostService::ExpertHostService(ExpertHostOptions opts, zmq::context_t& ctx)
    : opts_(std::move(opts)), ctx_(ctx), left_(leave_.get_future().share()) {}

ExpertHostService::~ExpertHostService() { stop(); }

std::string ExpertHostService::start() {
  std::promise<std::string> bound;
  auto f = bound.get_future();
  actor_ = actor_system().spawn<ExpertHostActor>(opts_, &ctx_, &bound, &leave_, &metrics_url_);
  return f.get();
}

bool ExpertHostService::drain(std::chrono::milliseconds deadline) { return drain_actor(actor_, deadline); }

void ExpertHostService::stop() { stop_actor(actor_); }

}  // namespace moemesh
