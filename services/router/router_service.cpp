#include "services/router/router_service.h"

#include <cstring>
#include <map>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/compute_queue.h"
#include "actors/drain.h"
#include "actors/mesh_actor.h"
#include "actors/role_metrics.h"
#include "actors/transport.h"
#include "core/model_config.h"
#include "model/moe_gate.h"
#include "services/router/placement.h"

namespace moemesh {

WireActivations parse_wire_activations(const std::string& s) {
  if (s == "f32") return WireActivations::F32;
  if (s == "bf16") return WireActivations::BF16;
  if (s == "fp8") return WireActivations::FP8;
  throw std::invalid_argument("activations must be f32, bf16 or fp8, not '" + s + "'");
}

const char* wire_activations_name(WireActivations w) {
  return w == WireActivations::F32 ? "f32" : w == WireActivations::BF16 ? "bf16" : "fp8";
}

std::vector<int64_t> gated_moe_layers(const ModelConfig& cfg, const Checkpoint& ckpt) {
  std::vector<int64_t> out;
  for (int64_t l = 0; l < cfg.num_hidden_layers + cfg.num_nextn_predict_layers; ++l)
    if (cfg.is_moe_layer(l) && ckpt.has("model.layers." + std::to_string(l) + ".mlp.gate.weight")) out.push_back(l);
  return out;
}

namespace {

using Gates = std::map<int64_t, std::unique_ptr<MoeGate>>;

// Activations of a wire message as f32 rows; throws WireError when they are not [rows, hidden].
std::vector<float> activations_of(const wire::Message& m, int64_t hidden, size_t extra_payloads) {
  const wire::Header& h = m.header;
  const bool fp8 = h.flags & wire::kFlagFp8Scaled;
  if (h.rank != 2 || h.shape[1] != hidden || h.shape[0] == 0)
    throw wire::WireError(wire::ErrorCode::BadFrame, "activations must be [rows > 0, " + std::to_string(hidden) + "]");
  if (m.payloads.size() != (fp8 ? 2 : 1) + extra_payloads)
    throw wire::WireError(wire::ErrorCode::BadFrame, "wrong number of payload frames");
  const int64_t rows = h.shape[0];
  std::vector<float> x(rows * hidden);
  if (fp8) {
    wire::dequantize_rows_fp8(m.payload_as<uint8_t>(0), m.payload_as<float>(1), rows, hidden, x.data());
  } else if (h.dtype == DType::F32) {
    std::memcpy(x.data(), m.payload_as<float>(0), x.size() * 4);
  } else if (h.dtype == DType::BF16) {
    const auto* b = m.payload_as<uint16_t>(0);
    for (size_t i = 0; i < x.size(); ++i) x[i] = bf16_to_f32(b[i]);
  } else {
    throw wire::WireError(wire::ErrorCode::BadFrame, "activations must be F32, BF16 or scaled F8_E4M3");
  }
  return x;
}

void put_activations(wire::Message& m, const float* x, int64_t rows, int64_t cols, WireActivations w) {
  m.header.rank = 2;
  m.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(cols), 0, 0};
  if (w == WireActivations::F32) {
    m.header.dtype = DType::F32;
    m.add_payload(x, rows * cols * 4);
  } else if (w == WireActivations::BF16) {
    m.header.dtype = DType::BF16;
    std::vector<uint16_t> b(rows * cols);
    for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_bf16(x[i]);
    m.add_payload(b);
  } else {
    m.header.dtype = DType::F8_E4M3;
    m.header.flags |= wire::kFlagFp8Scaled;
    const wire::Fp8Rows q = wire::quantize_rows_fp8(x, rows, cols);
    m.add_payload(q.values);
    m.add_payload(q.scales);
  }
}

using wire::json_message;


class RouterActor : public caf::event_based_actor {
 public:
  RouterActor(caf::actor_config& c, RouterOptions opts, zmq::context_t* ctx, std::promise<std::string>* bound,
              std::string* metrics_url)
      : caf::event_based_actor(c), opts_(std::move(opts)), transport_(*ctx), bound_(bound), metrics_url_(metrics_url) {}

  caf::behavior make_behavior() override {
    try {
      const auto load_start = std::chrono::steady_clock::now();
      cfg_ = ModelConfig::load(opts_.model);
      ckpt_ = std::make_unique<Checkpoint>(opts_.model);  // the gates point into its mapping
      auto gates = std::make_shared<Gates>();
      for (int64_t l : gated_moe_layers(cfg_, *ckpt_)) (*gates)[l] = std::make_unique<MoeGate>(cfg_, *ckpt_, l);
      gates_ = gates;
      load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
      placement_ = std::make_unique<Placement>(static_cast<int32_t>(cfg_.n_routed_experts));
      const std::string ep = transport_.start(opts_.bind, caf::actor_cast<caf::actor>(this));
      make_metrics(ep);
      bound_->set_value(ep);
    } catch (...) {
      bound_->set_exception(std::current_exception());
      quit();
      return {};
    }
    spdlog::info("router: {} MoE layers, {} experts, dispatch {}, deadline {} ms", gates_->size(), cfg_.n_routed_experts,
                 wire_activations_name(opts_.dispatch), opts_.deadline.count());
    last_rebalance_ = std::chrono::steady_clock::now();
    delayed_send(this, std::chrono::milliseconds(200), tick_atom::value);
    return {
        [this](inbound_atom, const InboundPtr& in) {
          received(in.get());
          on_inbound(*in);
        },
        [this](run_atom, const Continuation& f) {
          received(f.get());
          (*f)();
        },
        [this](deadline_atom, uint64_t dispatch) { on_deadline(dispatch); },
        [this](drain_atom, const DrainDone& done, int64_t) {
          // SIGTERM: MoE requests already taken are answered; new ones are refused.
          spdlog::info("router: draining ({} MoE requests open)", open_);
          drain_.start(done);
          drain_.settle(open_ == 0);
        },
        [this](tick_atom) {
          on_tick();
          delayed_send(this, std::chrono::milliseconds(200), tick_atom::value);
        },
    };
  }

  void on_exit() override {
    compute_.reset();  // finishes the job in flight; its reply still goes out
    transport_.stop();
  }

 private:
  struct Part {
    uint64_t pending = 0;
    int host = 0;
    std::vector<int64_t> slots;  // indices into the routing's [tokens, top_k]
    std::vector<int64_t> rows;   // token rows sent, in order
    bool done = false;
    std::vector<float> result;   // [rows, hidden]
    std::chrono::steady_clock::time_point sent;
  };
  struct Pending {
    std::vector<zmq::message_t> client;
    uint64_t client_request = 0;
    int32_t layer = 0;
    bool reply_f32 = false;
    std::vector<float> x;
    Routing routing;
    std::vector<uint64_t> parts;  // dispatch ids, in the order sent
    size_t outstanding = 0;
  };

  void make_metrics(const std::string& instance) {
    metrics_ = std::make_unique<RoleMetrics>("router", instance, opts_.metrics);
    *metrics_url_ = metrics_->url();
    auto& req = metrics_->counter("moemesh_moe_requests_total", "MoE layer requests answered, by status");
    m_ok_ = &req.Add({{"status", "ok"}});
    m_failed_ = &req.Add({{"status", "failed"}});
    auto& routed = metrics_->counter("moemesh_tokens_routed_total", "Tokens routed to each expert, all MoE layers summed");
    for (int64_t e = 0; e < cfg_.n_routed_experts; ++e) m_routed_.push_back(&routed.Add({{"expert", std::to_string(e)}}));
    m_bytes_ = &metrics_->counter("moemesh_dispatch_bytes_total", "Bytes dispatched to each expert host");
    m_latency_ = &metrics_->histogram("moemesh_dispatch_seconds", "From a dispatch to its combined answer, per expert host");
    m_up_ = &metrics_->gauge("moemesh_expert_host_up", "1 while an expert host is ready, 0.5 draining, 0 dead");
    m_membership_ = &metrics_->counter("moemesh_membership_changes_total", "Expert hosts joining, leaving or taken out").Add({});
    m_moves_ = &metrics_->counter("moemesh_rebalance_moves_total", "Expert loads and unloads asked for by rebalancing and drains").Add({});
    m_retries_ = &metrics_->counter("moemesh_dispatch_retries_total", "Dispatches sent again to a replica").Add({});
    m_wire_errors_ = &metrics_->counter("moemesh_wire_errors_total", "Malformed or refused frames").Add({});
    if (opts_.metrics_per_layer) {
      auto& by_layer = metrics_->counter("moemesh_tokens_routed_by_layer_total", "Tokens routed to each expert of each MoE layer");
      for (const auto& [layer, gate] : *gates_)
        for (int64_t e = 0; e < cfg_.n_routed_experts; ++e)
          m_routed_layer_[layer].push_back(&by_layer.Add({{"layer", std::to_string(layer)}, {"expert", std::to_string(e)}}));
    }
    m_uncovered_ = &metrics_->gauge("moemesh_uncovered_experts", "Routed experts with no ready expert host").Add({});
    m_uncovered_->Set(static_cast<double>(cfg_.n_routed_experts));
    metrics_->gauge("moemesh_model_load_seconds", "Time this role took to load its part of the model").Add({}).Set(load_seconds_);
  }

  void reply_error(const Inbound& in, wire::ErrorCode code, const std::string& what) {
    transport_.reply(std::move(const_cast<Inbound&>(in).routing),
                     wire::error_message(in.message ? in.message->header.request_id : 0, code, what));
  }

  void on_inbound(Inbound& in) {
    const wire::Message& m = *in.message;
    spdlog::debug("router: message type {} on socket {}", static_cast<int>(m.header.type), in.socket);
    try {
      if (in.socket != 0) return on_host_reply(in.socket, m);
      switch (m.header.type) {
        case wire::MsgType::MoeRequest: return on_moe_request(in);
        case wire::MsgType::Hello:
        case wire::MsgType::Heartbeat: return on_host_hello(in);
        case wire::MsgType::Control: return on_control(in);
        default:
          throw wire::WireError(wire::ErrorCode::Unsupported,
                                "router: cannot handle message type " + std::to_string(static_cast<int>(m.header.type)));
      }
    } catch (const wire::WireError& e) {
      ++errors_;
      spdlog::warn("router: {}", e.what());
      if (in.socket == 0) reply_error(in, e.code(), e.what());
    }
  }

  void on_moe_request(Inbound& in) {
    if (drain_.draining()) throw wire::WireError(wire::ErrorCode::ShuttingDown, "router: shutting down; not taking new MoE requests");
    const wire::Message& m = *in.message;
    auto g = gates_->find(m.header.layer);
    if (g == gates_->end()) throw wire::WireError(wire::ErrorCode::BadFrame, "router: layer " + std::to_string(m.header.layer) + " is not a MoE layer");
    auto p = std::make_shared<Pending>();
    p->x = activations_of(m, cfg_.hidden_size, 0);
    p->client = std::move(in.routing);
    p->client_request = m.header.request_id;
    p->layer = m.header.layer;
    p->reply_f32 = m.header.dtype == DType::F32 && !(m.header.flags & wire::kFlagFp8Scaled);
    ++requests_;
    ++open_;
    // Gate on the compute queue, then dispatch back here.
    auto gates = gates_;
    auto self = caf::actor_cast<caf::actor>(this);
    compute_->post([this, self, gates, p] {
      const int64_t tokens = static_cast<int64_t>(p->x.size()) / cfg_.hidden_size;
      p->routing = gates->at(p->layer)->route(p->x.data(), tokens);
      run_in(self, [this, p] { start_request(p); });
    });
  }

  void start_request(const std::shared_ptr<Pending>& p) {
    const uint64_t id = next_pending_++;
    pending_[id] = p;
    std::vector<int64_t> slots;
    for (size_t s = 0; s < p->routing.experts.size(); ++s) {
      slots.push_back(static_cast<int64_t>(s));
      placement_->count_tokens(p->routing.experts[s], 1);
      m_routed_[p->routing.experts[s]]->Increment();
      if (!m_routed_layer_.empty()) m_routed_layer_.at(p->layer)[p->routing.experts[s]]->Increment();
    }
    dispatch(id, slots, {});
  }

  // Sends the given routing slots of a pending request to hosts holding their experts.
  void dispatch(uint64_t id, const std::vector<int64_t>& slots, const std::set<int>& exclude) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Pending& p = *it->second;
    const int64_t k = p.routing.top_k, H = cfg_.hidden_size;
    std::vector<int64_t> counts(cfg_.n_routed_experts, 0);
    for (int64_t s : slots) ++counts[p.routing.experts[s]];
    const std::vector<int> host_of = placement_->assign(counts, exclude);
    for (int64_t s : slots)
      if (host_of[p.routing.experts[s]] < 0)
        return fail(id, "expert " + std::to_string(p.routing.experts[s]) + " of layer " + std::to_string(p.layer) +
                            " has no live expert host");
    std::map<int, std::vector<int64_t>> by_host;
    for (int64_t s : slots) by_host[host_of[p.routing.experts[s]]].push_back(s);
    spdlog::debug("router: request {} layer {}: {} slots to {} hosts", id, p.layer, slots.size(), by_host.size());
    for (auto& [host, hs] : by_host) {
      HostEntry* h = placement_->host(host);
      Part part;
      part.pending = id;
      part.host = host;
      part.slots = hs;
      // Rows with at least one slot here, and their routing (others' slots -1).
      std::map<int64_t, std::vector<int64_t>> rows;
      for (int64_t s : hs) rows[s / k].push_back(s);
      std::vector<float> xs;
      std::vector<int32_t> experts;
      std::vector<float> weights;
      xs.reserve(rows.size() * H);
      for (const auto& [t, ss] : rows) {
        part.rows.push_back(t);
        xs.insert(xs.end(), p.x.begin() + t * H, p.x.begin() + (t + 1) * H);
        for (int64_t j = 0; j < k; ++j) {
          const bool mine = std::find(ss.begin(), ss.end(), t * k + j) != ss.end();
          experts.push_back(mine ? p.routing.experts[t * k + j] : -1);
          weights.push_back(mine ? p.routing.weights[t * k + j] : 0.0f);
        }
      }
      wire::Message m;
      m.header.type = wire::MsgType::Dispatch;
      const uint64_t did = next_dispatch_++;
      m.header.request_id = did;
      m.header.layer = p.layer;
      m.header.aux = static_cast<uint32_t>(k);
      put_activations(m, xs.data(), static_cast<int64_t>(part.rows.size()), H, opts_.dispatch);
      m.add_payload(experts);
      m.add_payload(weights);
      h->inflight_rows += static_cast<int64_t>(part.rows.size());
      m_bytes_->Add({{"host", h->name}}).Increment(static_cast<double>(payload_bytes(m)));
      part.sent = std::chrono::steady_clock::now();
      transport_.send(h->socket, std::move(m));
      parts_[did] = std::move(part);
      p.parts.push_back(did);
      ++p.outstanding;
      delayed_send(this, opts_.deadline, deadline_atom::value, did);
    }
  }

  // One MoE request answered (summed or failed): a draining router may be done.
  void answered() {
    --open_;
    drain_.settle(open_ == 0);
  }

  void fail(uint64_t id, const std::string& why) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Pending& p = *it->second;
    ++failed_;
    m_failed_->Increment();
    spdlog::warn("router: request failed: {}", why);
    transport_.reply(std::move(p.client), wire::error_message(p.client_request, wire::ErrorCode::Failed, "router: " + why));
    answered();
    for (uint64_t did : p.parts) {
      auto pt = parts_.find(did);
      if (pt == parts_.end()) continue;
      if (!pt->second.done)
        if (HostEntry* h = placement_->host(pt->second.host)) h->inflight_rows -= static_cast<int64_t>(pt->second.rows.size());
      parts_.erase(pt);
    }
    pending_.erase(it);
  }

  void on_host_reply(int socket, const wire::Message& m) {
    HostEntry* h = nullptr;
    for (const auto& [id, e] : placement_->hosts())
      if (e.socket == socket) h = placement_->host(id);
    if (!h) return;  // a host removed meanwhile
    h->last_seen = std::chrono::steady_clock::now();
    if (m.header.type == wire::MsgType::Control) return on_host_control(*h, wire::json_payload(m));
    auto pt = parts_.find(m.header.request_id);
    if (pt == parts_.end() || pt->second.host != h->id) return;  // late: already retried elsewhere
    Part& part = pt->second;
    const uint64_t id = part.pending;
    const int64_t rows = static_cast<int64_t>(part.rows.size());
    h->inflight_rows -= rows;
    if (m.header.type == wire::MsgType::Error || m.header.type != wire::MsgType::Combine) {
      // The host refused (e.g. it no longer holds the expert): retry elsewhere.
      ++h->failures;
      const std::string why = m.payloads.empty() ? "?" : std::string(m.payload_as<char>(0), m.payload_size(0));
      spdlog::warn("router: expert host {} refused a dispatch: {}", h->name, why);
      const std::vector<int64_t> slots = part.slots;
      const int host = part.host;
      parts_.erase(pt);
      auto p = pending_.find(id);
      if (p == pending_.end()) return;
      --p->second->outstanding;
      dispatch(id, slots, {host});
      return maybe_finish(id);
    }
    try {
      part.result = activations_of(m, cfg_.hidden_size, 0);
      if (static_cast<int64_t>(part.result.size()) != rows * cfg_.hidden_size)
        throw wire::WireError(wire::ErrorCode::BadFrame, "Combine has the wrong number of rows");
    } catch (const wire::WireError& e) {
      ++h->failures;
      const std::vector<int64_t> slots = part.slots;
      const int host = part.host;
      parts_.erase(pt);
      spdlog::warn("router: bad Combine from {}: {}", h->name, e.what());
      auto p = pending_.find(id);
      if (p == pending_.end()) return;
      --p->second->outstanding;
      dispatch(id, slots, {host});
      return maybe_finish(id);
    }
    part.done = true;
    m_latency_->Add({{"host", h->name}}, latency_buckets())
        .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - part.sent).count());
    h->rows_served += static_cast<uint64_t>(rows);
    ++h->dispatches;
    auto p = pending_.find(id);
    if (p == pending_.end()) return;
    --p->second->outstanding;
    maybe_finish(id);
  }

  void maybe_finish(uint64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second->outstanding > 0) return;
    auto p = it->second;
    pending_.erase(it);
    m_ok_->Increment();
    // Sum the partial sums on the compute queue (in dispatch order), reply from there.
    auto results = std::make_shared<std::vector<std::pair<std::vector<int64_t>, std::vector<float>>>>();
    for (uint64_t did : p->parts) {
      auto pt = parts_.find(did);
      if (pt == parts_.end()) continue;
      if (pt->second.done) results->emplace_back(std::move(pt->second.rows), std::move(pt->second.result));
      parts_.erase(pt);
    }
    const int64_t H = cfg_.hidden_size;
    Transport* t = &transport_;
    auto self = caf::actor_cast<caf::actor>(this);
    compute_->post([this, self, p, results, H, t] {
      const int64_t tokens = static_cast<int64_t>(p->x.size()) / H;
      std::vector<float> out(tokens * H, 0.0f);
      for (const auto& [rows, y] : *results)
        for (size_t i = 0; i < rows.size(); ++i) {
          float* o = out.data() + rows[i] * H;
          const float* s = y.data() + i * H;
          for (int64_t d = 0; d < H; ++d) o[d] += s[d];
        }
      wire::Message r;
      r.header.type = wire::MsgType::MoeResponse;
      r.header.request_id = p->client_request;
      r.header.layer = p->layer;
      put_activations(r, out.data(), tokens, H, p->reply_f32 ? WireActivations::F32 : WireActivations::BF16);
      t->reply(std::move(p->client), std::move(r));
      run_in(self, [this] { answered(); });
    });
  }

  void on_deadline(uint64_t did) {
    auto pt = parts_.find(did);
    if (pt == parts_.end() || pt->second.done) return;
    HostEntry* h = placement_->host(pt->second.host);
    const std::string name = h ? h->name : "?";
    spdlog::warn("router: expert host {} missed the {} ms deadline; taking it out", name, opts_.deadline.count());
    if (h) take_out(h->id);
  }

  // Marks a host dead and retries everything in flight on it elsewhere.
  void take_out(int host) {
    HostEntry* h = placement_->host(host);
    if (!h || h->state == HostState::Dead) return;
    h->state = HostState::Dead;
    ++h->failures;
    ++membership_changes_;
    transport_.disconnect(h->socket);
    h->socket = 0;
    h->inflight_rows = 0;
    std::vector<std::pair<uint64_t, std::vector<int64_t>>> retry;
    for (auto it = parts_.begin(); it != parts_.end();) {
      if (it->second.host == host && !it->second.done) {
        retry.emplace_back(it->second.pending, it->second.slots);
        auto p = pending_.find(it->second.pending);
        if (p != pending_.end()) {
          --p->second->outstanding;
          auto& v = p->second->parts;
          v.erase(std::remove(v.begin(), v.end(), it->first), v.end());
        }
        it = parts_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [id, slots] : retry) {
      ++retries_;
      m_retries_->Increment();
      dispatch(id, slots, {host});
      maybe_finish(id);
    }
  }

  void on_host_hello(Inbound& in) {
    const nlohmann::json j = wire::json_payload(*in.message);
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("endpoint") || !j["endpoint"].is_string() ||
        !j.contains("experts") || !j["experts"].is_array())
      throw wire::WireError(wire::ErrorCode::BadFrame, "router: Hello needs name, endpoint and experts");
    std::set<int32_t> experts;
    for (const auto& e : j["experts"]) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= cfg_.n_routed_experts)
        throw wire::WireError(wire::ErrorCode::BadFrame, "router: Hello lists an invalid expert id " + e.dump());
      experts.insert(e.get<int32_t>());
    }
    const std::string name = j["name"], endpoint = j["endpoint"];
    const int64_t capacity = j.value("capacity", static_cast<int64_t>(cfg_.n_routed_experts));
    HostEntry* h = placement_->find(name);
    const bool known = h && h->state != HostState::Dead && h->endpoint == endpoint;
    if (known) {
      h->last_seen = std::chrono::steady_clock::now();
      if (in.message->header.type == wire::MsgType::Hello)
        transport_.reply(std::move(in.routing), json_message(wire::MsgType::Hello, in.message->header.request_id, {{"registered", name}}));
      return;
    }
    if (h && h->socket) transport_.disconnect(h->socket);
    const int id = placement_->upsert(name, endpoint, experts, capacity);
    h = placement_->host(id);
    h->socket = transport_.connect(endpoint);
    h->inflight_rows = 0;
    ++membership_changes_;
    m_up_->Add({{"host", name}}).Set(1);
    spdlog::info("router: expert host {} at {} joined with {} experts", name, endpoint, experts.size());
    transport_.reply(std::move(in.routing), json_message(wire::MsgType::Hello, in.message->header.request_id, {{"registered", name}}));
    if (experts.empty() && capacity > 0) {
      const std::vector<int32_t> assign = placement_->plan_join(capacity);
      send_load(*h, assign, true);
    }
  }

  void send_load(HostEntry& h, const std::vector<int32_t>& experts, bool load) {
    if (experts.empty()) return;
    if (load) h.loading.insert(experts.begin(), experts.end());
    else
      for (int32_t e : experts) h.experts.erase(e);  // stop routing there first
    transport_.send(h.socket, json_message(wire::MsgType::Control, next_dispatch_++,
                                           {{"cmd", load ? "load" : "unload"}, {"experts", experts}}));
    moves_ += experts.size();
    m_moves_->Increment(static_cast<double>(experts.size()));
    spdlog::info("router: asking {} to {} {} experts", h.name, load ? "load" : "unload", experts.size());
  }

  void on_host_control(HostEntry& h, const nlohmann::json& j) {
    // A host's answer to load/unload: the experts it now holds.
    if (!j.is_object() || !j.contains("experts") || !j["experts"].is_array()) return;
    std::set<int32_t> now;
    for (const auto& e : j["experts"])
      if (e.is_number_integer() && e.get<int64_t>() >= 0 && e.get<int64_t>() < cfg_.n_routed_experts) now.insert(e.get<int32_t>());
    h.experts = now;
    for (int32_t e : now) h.loading.erase(e);
    if (j.value("cmd", "") == "load") h.loading.clear();
    spdlog::info("router: expert host {} now holds {} experts", h.name, now.size());
  }

  void on_control(Inbound& in) {
    const nlohmann::json j = wire::json_payload(*in.message);
    const std::string cmd = j.is_object() ? j.value("cmd", "") : "";
    nlohmann::json r;
    if (cmd == "stats" || cmd == "placement") {
      r = placement_->to_json();
      r["requests"] = requests_;
      r["failed"] = failed_;
      r["retries"] = retries_;
      r["errors"] = errors_;
      r["bad_frames"] = transport_.bad_frames();
      r["moves"] = moves_;
      r["membership_changes"] = membership_changes_;
      r["bytes_sent"] = transport_.bytes_sent();
      r["dispatch"] = wire_activations_name(opts_.dispatch);
    } else if (cmd == "leaving") {
      // A host stopping by itself: no new work for it; it is told to leave once
      // what it holds in flight is answered (its sole experts go uncovered).
      HostEntry* h = j.contains("host") && j["host"].is_string() ? placement_->find(j["host"]) : nullptr;
      if (!h || h->state == HostState::Dead) throw wire::WireError(wire::ErrorCode::Failed, "router: no live expert host named " + j.value("host", std::string("?")));
      if (h->state != HostState::Draining) ++membership_changes_;
      h->state = HostState::Draining;
      h->leaving = true;
      spdlog::info("router: expert host {} is stopping ({} rows in flight)", h->name, h->inflight_rows);
      r["leaving"] = h->name;
    } else if (cmd == "rebalance") {
      r["moves"] = rebalance();
    } else if (cmd == "drain") {
      HostEntry* h = j.contains("host") && j["host"].is_string() ? placement_->find(j["host"]) : nullptr;
      if (!h || h->state == HostState::Dead) throw wire::WireError(wire::ErrorCode::Failed, "router: no live expert host named " + j.value("host", std::string("?")));
      h->state = HostState::Draining;
      ++membership_changes_;
      // Its sole copies go to the least-loaded ready hosts with room first.
      std::vector<int32_t> sole = placement_->sole_holdings(h->id);
      std::map<int, std::vector<int32_t>> loads;
      for (int32_t e : sole) {
        int best = -1;
        for (const auto& [id, o] : placement_->hosts()) {
          if (id == h->id || o.state != HostState::Ready) continue;
          if (static_cast<int64_t>(o.experts.size() + o.loading.size() + loads[id].size()) >= o.capacity) continue;
          if (best < 0 || o.inflight_rows + loads[id].size() < placement_->hosts().at(best).inflight_rows + loads[best].size()) best = id;
        }
        if (best >= 0) loads[best].push_back(e);
      }
      for (auto& [id, es] : loads) send_load(*placement_->host(id), es, true);
      spdlog::info("router: draining expert host {} ({} sole experts moved)", h->name, sole.size());
      r["draining"] = h->name;
      r["reassigned"] = sole;
    } else {
      throw wire::WireError(wire::ErrorCode::Unsupported, "router: unknown control command '" + cmd + "' (stats, rebalance, drain, leaving)");
    }
    transport_.reply(std::move(in.routing), json_message(wire::MsgType::Control, in.message->header.request_id, r));
  }

  nlohmann::json rebalance() {
    nlohmann::json out = nlohmann::json::array();
    std::map<int, std::pair<std::vector<int32_t>, std::vector<int32_t>>> per_host;
    for (const Move& m : placement_->plan_rebalance(opts_.rebalance_moves)) {
      (m.load ? per_host[m.host].first : per_host[m.host].second).push_back(m.expert);
      out.push_back({{"host", placement_->host(m.host)->name}, {"expert", m.expert}, {"action", m.load ? "load" : "unload"}});
    }
    for (auto& [id, lu] : per_host) {
      HostEntry* h = placement_->host(id);
      send_load(*h, lu.second, false);
      send_load(*h, lu.first, true);
    }
    last_rebalance_ = std::chrono::steady_clock::now();
    return out;
  }

  void on_tick() {
    const auto now = std::chrono::steady_clock::now();
    // Metrics that follow state: membership and host health, wire errors.
    if (membership_changes_ > seen_membership_) {
      m_membership_->Increment(static_cast<double>(membership_changes_ - seen_membership_));
      seen_membership_ = membership_changes_;
    }
    const uint64_t wire_errors = errors_ + transport_.bad_frames();
    if (wire_errors > seen_wire_errors_) {
      m_wire_errors_->Increment(static_cast<double>(wire_errors - seen_wire_errors_));
      seen_wire_errors_ = wire_errors;
    }
    for (const auto& [id, h] : placement_->hosts())
      m_up_->Add({{"host", h.name}}).Set(h.state == HostState::Ready ? 1.0 : h.state == HostState::Draining ? 0.5 : 0.0);
    m_uncovered_->Set(static_cast<double>(placement_->uncovered().size()));
    std::vector<int> dead, drained;
    for (const auto& [id, h] : placement_->hosts()) {
      if (h.state == HostState::Dead) continue;
      if (now - h.last_seen > opts_.heartbeat_timeout) dead.push_back(id);
      else if (h.state == HostState::Draining && h.inflight_rows == 0 && (h.leaving || placement_->sole_holdings(id).empty()))
        drained.push_back(id);
    }
    for (int id : dead) {
      spdlog::warn("router: expert host {} missed its heartbeats; taking it out", placement_->host(id)->name);
      take_out(id);
    }
    for (int id : drained) {
      HostEntry* h = placement_->host(id);
      spdlog::info("router: expert host {} drained; telling it to leave", h->name);
      transport_.send(h->socket, json_message(wire::MsgType::Control, next_dispatch_++, {{"cmd", "leave"}}));
      transport_.disconnect(h->socket);
      ++membership_changes_;
      m_up_->Add({{"host", h->name}}).Set(0);
      placement_->erase(id);
    }
    if (opts_.rebalance_interval.count() > 0 && now - last_rebalance_ > opts_.rebalance_interval) rebalance();
  }

  RouterOptions opts_;
  Transport transport_;
  std::promise<std::string>* bound_;
  std::string* metrics_url_;
  std::unique_ptr<ComputeQueue> compute_ = std::make_unique<ComputeQueue>();
  ModelConfig cfg_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<RoleMetrics> metrics_;
  prometheus::Counter *m_ok_ = nullptr, *m_failed_ = nullptr, *m_membership_ = nullptr, *m_moves_ = nullptr,
                      *m_retries_ = nullptr, *m_wire_errors_ = nullptr;
  std::vector<prometheus::Counter*> m_routed_;
  std::map<int64_t, std::vector<prometheus::Counter*>> m_routed_layer_;
  prometheus::Family<prometheus::Counter>* m_bytes_ = nullptr;
  prometheus::Family<prometheus::Histogram>* m_latency_ = nullptr;
  prometheus::Family<prometheus::Gauge>* m_up_ = nullptr;
  prometheus::Gauge* m_uncovered_ = nullptr;
  uint64_t seen_membership_ = 0, seen_wire_errors_ = 0;
  double load_seconds_ = 0;
  std::shared_ptr<const Gates> gates_;
  std::unique_ptr<Placement> placement_;
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;
  std::map<uint64_t, Part> parts_;
  uint64_t next_pending_ = 1, next_dispatch_ = 1;
  int64_t open_ = 0;  // MoE requests taken and not yet answered
  DrainState drain_;
  uint64_t requests_ = 0, failed_ = 0, retries_ = 0, errors_ = 0, moves_ = 0, membership_changes_ = 0;
  std::chrono::steady_clock::time_point last_rebalance_;
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

void RouterService::stop() {
  stop_actor(actor_);
}

}  // namespace moemesh
