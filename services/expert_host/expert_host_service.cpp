#include "services/expert_host/expert_host_service.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/compute_queue.h"
#include "actors/drain.h"
#include "actors/mesh_actor.h"
#include "actors/role_metrics.h"
#include "actors/transport.h"
#include "core/model_config.h"
#include "services/expert_host/expert_host.h"

namespace moemesh {
namespace {

using wire::json_message;

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
      endpoint_ = transport_.start(opts_.bind, caf::actor_cast<caf::actor>(this));
      if (!opts_.advertise.empty()) endpoint_ = opts_.advertise;  // e.g. behind 0.0.0.0 in a pod
      if (opts_.name.empty()) opts_.name = endpoint_;
      metrics_ = std::make_unique<RoleMetrics>("expert-host", opts_.name, opts_.metrics);
      *metrics_url_ = metrics_->url();
      m_dispatches_ = &metrics_->counter("moemesh_expert_dispatches_total", "Dispatches computed").Add({});
      m_rows_ = &metrics_->counter("moemesh_expert_rows_total", "Token rows computed").Add({});
      m_loaded_ = &metrics_->gauge("moemesh_experts_loaded", "Routed experts held (the same ids on every MoE layer)").Add({});
      m_compute_ = &metrics_->histogram("moemesh_expert_compute_seconds", "Time to compute one dispatch").Add({}, latency_buckets());
      m_wire_errors_ = &metrics_->counter("moemesh_wire_errors_total", "Malformed or refused frames").Add({});
      m_loaded_->Set(static_cast<double>(held_.size()));
      metrics_->gauge("moemesh_model_load_seconds", "Time this role took to load its part of the model").Add({}).Set(load_seconds);
      if (!opts_.router.empty()) {
        router_ = transport_.connect(opts_.router);
        transport_.send(router_, json_message(wire::MsgType::Hello, 1, report()));
      }
      bound_->set_value(endpoint_);
    } catch (...) {
      bound_->set_exception(std::current_exception());
      quit();
      return {};
    }
    spdlog::info("expert host {}: {} experts on {}{}", opts_.name, held_.size(), endpoint_,
                 opts_.router.empty() ? "" : ", registered with " + opts_.router);
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
          transport_.send(router_, json_message(wire::MsgType::Heartbeat, 0, report()));
          delayed_send(this, opts_.heartbeat, tick_atom::value);
        },
    };
  }

  void on_exit() override {
    compute_.reset();  // finishes the job in flight; its reply still goes out
    transport_.stop();
    // A pending delayed message (the drain fallback) keeps this object alive
    // until it fires: let go of the experts' weights now.
    host_.reset();
    ckpt_.reset();
  }

 private:
  nlohmann::json report() const {
    return {{"role", "expert-host"}, {"name", opts_.name}, {"endpoint", endpoint_}, {"experts", held_},
            {"capacity", opts_.capacity}, {"dispatches", dispatches_}, {"rows", rows_}};
  }

  // SIGTERM: the router is told this host is stopping, sends it no more work
  // and says `leave` once what it had sent is answered. A router that stays
  // silent is taken for gone: the host then stops once its own work is done.
  void start_drain(const DrainDone& done, int64_t deadline_ms) {
    spdlog::info("expert host {}: stopping ({} dispatches running)", opts_.name, inflight_);
    drain_.start(done);
    leaving_ = true;  // no more heartbeats
    if (!router_) return settle();
    transport_.send(router_, json_message(wire::MsgType::Control, 2, {{"cmd", "leaving"}, {"host", opts_.name}}));
    const auto silent = std::chrono::milliseconds(std::min<int64_t>(5000, std::max<int64_t>(deadline_ms - 500, 0)));
    delayed_send(this, silent, run_atom::value, continuation([this] {
      router_gone_ = true;
      settle();
    }));
  }

  void settle() { drain_.settle(inflight_ == 0 && (!router_ || left_ || router_gone_)); }

  void on_inbound(const InboundPtr& in) {
    if (in->socket != 0) return;  // the router's answers to Hello/Heartbeat
    const wire::Header& h = in->message->header;
    spdlog::debug("expert host {}: message type {}", opts_.name, static_cast<int>(h.type));
    auto self = caf::actor_cast<caf::actor>(this);
    if (h.type == wire::MsgType::Control) return on_control(in);
    if (h.type == wire::MsgType::Hello) {
      transport_.reply(std::move(in->routing), json_message(wire::MsgType::Hello, h.request_id, report()));
      return;
    }
    // Dispatches (and anything else, which handle() refuses) run on the compute queue.
    ExpertHost* host = host_.get();
    Transport* t = &transport_;
    ++inflight_;
    compute_->post([in, host, t, self, this] {
      wire::Message reply;
      const auto t0 = std::chrono::steady_clock::now();
      const uint64_t rows_before = host->rows();
      try {
        reply = host->handle(*in->message);
        m_compute_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        m_dispatches_->Increment();
        m_rows_->Increment(static_cast<double>(host->rows() - rows_before));
      } catch (const wire::WireError& e) {
        spdlog::warn("expert host: {}", e.what());
        m_wire_errors_->Increment();
        reply = wire::error_message(in->message->header.request_id, e.code(), e.what());
      }
      const uint64_t d = host->dispatches(), r = host->rows();
      t->reply(std::move(in->routing), std::move(reply));
      run_in(self, [this, d, r] {
        dispatches_ = d;
        rows_ = r;
        --inflight_;
        settle();
      });
    });
  }

  void on_control(const InboundPtr& in) {
    const wire::Header& h = in->message->header;
    nlohmann::json j;
    try {
      j = wire::json_payload(*in->message);
    } catch (const wire::WireError& e) {
      transport_.reply(std::move(in->routing), wire::error_message(h.request_id, e.code(), std::string("expert host: ") + e.what()));
      return;
    }
    const std::string cmd = j.is_object() ? j.value("cmd", "") : "";
    if (cmd == "leave") {
      spdlog::info("expert host {}: drained, leaving", opts_.name);
      leaving_ = true;
      transport_.reply(std::move(in->routing), json_message(wire::MsgType::Control, h.request_id, {{"cmd", "leave"}, {"ok", true}}));
      if (!left_) leave_->set_value();  // a repeated leave must not throw
      left_ = true;
      settle();
      return;
    }
    if ((cmd != "load" && cmd != "unload") || !j.contains("experts") || !j["experts"].is_array()) {
      transport_.reply(std::move(in->routing), wire::error_message(h.request_id, wire::ErrorCode::Unsupported,
                                                                   "expert host: control commands are load, unload (with experts) and leave"));
      return;
    }
    std::vector<int32_t> ids;
    for (const auto& e : j["experts"])
      if (e.is_number_integer() && e.get<int64_t>() >= 0 && e.get<int64_t>() < cfg_.n_routed_experts) ids.push_back(e.get<int32_t>());
    ExpertHost* host = host_.get();
    Transport* t = &transport_;
    auto self = caf::actor_cast<caf::actor>(this);
    const int64_t capacity = opts_.capacity;
    compute_->post([in, host, t, self, this, cmd, ids, capacity, id = h.request_id] {
      std::vector<int32_t> want = ids;
      if (cmd == "load") {
        // Never beyond capacity.
        const int64_t room = capacity - static_cast<int64_t>(host->experts().size());
        if (room < static_cast<int64_t>(want.size())) want.resize(static_cast<size_t>(std::max<int64_t>(room, 0)));
      }
      const std::vector<int32_t> now = cmd == "load" ? host->load(want) : host->unload(want);
      spdlog::info("expert host: {} {} experts, holds {}", cmd == "load" ? "loaded" : "unloaded", want.size(), now.size());
      t->reply(std::move(in->routing), json_message(wire::MsgType::Control, id, {{"cmd", cmd}, {"experts", now}}));
      run_in(self, [this, now] {
        held_ = now;
        m_loaded_->Set(static_cast<double>(now.size()));
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
  prometheus::Gauge* m_loaded_ = nullptr;
  prometheus::Histogram* m_compute_ = nullptr;
  std::unique_ptr<ComputeQueue> compute_ = std::make_unique<ComputeQueue>();
  ModelConfig cfg_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<ExpertHost> host_;
  std::vector<int32_t> held_;
  std::string endpoint_;
  int router_ = 0;
  bool leaving_ = false, left_ = false, router_gone_ = false;
  int64_t inflight_ = 0;  // dispatches on the compute queue
  DrainState drain_;
  uint64_t dispatches_ = 0, rows_ = 0;
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

void ExpertHostService::stop() {
  stop_actor(actor_);
}

}  // namespace moemesh
