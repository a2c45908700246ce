// The attention role as an actor: Generate, Score and Control on its ROUTER
// socket; the scheduler and engine on its compute queue, one job at a time.
#include <unistd.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/compute_queue.h"
#include "actors/drain.h"
#include "actors/mesh_actor.h"
#include "actors/role_metrics.h"
#include "actors/transport.h"
#include "core/grammar/constraint_cache.h"
#include "core/tokenizer/tokenizer.h"
#include "services/attention/api.h"
#include "services/expert_host/client.h"
#include "services/mtp_draft/client.h"
#include "services/router/api.h"

namespace moemesh {
namespace {


using wire::json_message;

// Score sequences take engine sequence ids far from the scheduler's (which count from 1).
constexpr SeqId kScoreSequences = SeqId{0x53434f5245} << 24;  // "SCORE"

wire::ErrorCode code_of(Refusal r) {
  switch (r) {
    case Refusal::Invalid: return wire::ErrorCode::BadFrame;
    case Refusal::TooLarge: return wire::ErrorCode::TooLarge;
    case Refusal::Overloaded: return wire::ErrorCode::Overloaded;
  }
  return wire::ErrorCode::Failed;
}

class AttentionActor : public caf::event_based_actor {
 public:
  AttentionActor(caf::actor_config& c, AttentionOptions opts, zmq::context_t* ctx, std::promise<std::string>* bound,
                 std::string* metrics_url)
      : caf::event_based_actor(c), opts_(std::move(opts)), ctx_(*ctx), transport_(*ctx), bound_(bound), metrics_url_(metrics_url) {}

  caf::behavior make_behavior() override {
    try {
      EngineOptions eo;
      eo.kv_tokens = opts_.kv_tokens;
      eo.kv_dtype = opts_.kv_dtype;
      eo.compute = opts_.compute;
      eo.load_mtp = false;  // the mtp-draft role holds it
      eo.moe_lanes = opts_.micro_batches;
      eo.prefix_cache = opts_.prefix_cache;
      zmq::context_t* ctx = &ctx_;
      const AttentionOptions o = opts_;
      auto dispatchers = &dispatchers_;
      eo.make_moe = [ctx, o, dispatchers](const ModelConfig& cfg, const Checkpoint& ckpt,
                                          const std::vector<int64_t>& layers) -> std::unique_ptr<MoeExecutor> {
        if (layers.empty()) return nullptr;
        if (o.router.empty()) throw std::runtime_error("this model has MoE layers: the attention role needs a router address");
        DispatcherOptions d = o.dispatch;
        d.count_layers = o.metrics_per_layer;
        d.name = "attention-" + std::to_string(::getpid()) + "/" + std::to_string(dispatchers->size());
        auto e = std::make_unique<ExpertDispatcher>(*ctx, cfg, ckpt, layers, o.router, d);
        dispatchers->push_back(e.get());
        return e;
      };
      const auto load_start = std::chrono::steady_clock::now();
      engine_ = std::make_unique<Engine>(opts_.model, eo);
      load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
      scheduler_ = std::make_unique<Scheduler>(*engine_, opts_.scheduler);
      load_token_bytes();
      if (!opts_.mtp.empty()) {
        drafter_ = std::make_unique<RemoteDrafter>(ctx_, opts_.mtp, engine_->config().vocab_size, engine_->config().hidden_size);
        if (opts_.speculative > 0) scheduler_->set_drafter(drafter_.get(), opts_.speculative);
      }
      const std::string ep = transport_.start(opts_.bind, caf::actor_cast<caf::actor>(this));
      metrics_ = std::make_unique<RoleMetrics>("attention", ep, opts_.metrics);
      transport_.count_drops_in(*metrics_);
      *metrics_url_ = metrics_->url();
      m_kv_ = &metrics_->gauge("moemesh_kv_cache_pages", "Latent KV cache pages, by state");
      m_batch_ = &metrics_->gauge("moemesh_batch_size", "Requests in the running batch").Add({});
      m_queue_ = &metrics_->gauge("moemesh_queue_depth", "Requests waiting for admission").Add({});
      m_tokens_ = &metrics_->counter("moemesh_generated_tokens_total", "Tokens generated").Add({});
      m_step_ = &metrics_->histogram("moemesh_engine_step_seconds", "Time of one engine step (all its micro-batches)").Add({}, latency_buckets());
      m_drafted_ = &metrics_->counter("moemesh_mtp_drafted_tokens_total", "Draft tokens verified, by draft position");
      m_accepted_ = &metrics_->counter("moemesh_mtp_accepted_tokens_total", "Draft tokens accepted, by draft position");
      m_requests_ = &metrics_->counter("moemesh_requests_total", "Generations finished, by finish reason");
      if (opts_.prefix_cache) {
        m_prefix_pages_ = &metrics_->gauge("moemesh_prefix_cache_pages", "KV cache pages the prefix cache holds").Add({});
        m_prefix_hit_ = &metrics_->counter("moemesh_prefix_cache_hit_tokens_total", "Prompt tokens served from the prefix cache").Add({});
        m_prefix_prompt_ = &metrics_->counter("moemesh_prefix_cache_prompt_tokens_total",
                                              "Prompt tokens of admitted requests (hit rate: hit tokens over these)").Add({});
        m_prefix_evicted_ = &metrics_->counter("moemesh_prefix_cache_evicted_pages_total", "Cached pages evicted to make room").Add({});
      }
      metrics_->gauge("moemesh_model_load_seconds", "Time this role took to load its part of the model").Add({}).Set(load_seconds_);
      dispatch_metrics_ = std::make_unique<DispatcherMetrics>(*metrics_, opts_.metrics_per_layer);
      advertise_ = opts_.advertise.empty() ? ep : opts_.advertise;
      // A wildcard address is nowhere a gateway can dial: such a replica is reached
      // only where it is configured (attention.connect), and says so.
      const bool dialable = advertise_.find("://0.0.0.0:") == std::string::npos && advertise_.find("://*:") == std::string::npos;
      if (!dialable)
        spdlog::warn("attention: bound to {} with no attention.advertise: not reporting to the router as a replica", advertise_);
      if (!opts_.router.empty() && dialable) router_socket_ = transport_.connect(opts_.router, false, "router");
      bound_->set_value(ep);
    } catch (...) {
      bound_->set_exception(std::current_exception());
      quit();
      return {};
    }
    spdlog::info("attention: {} layers, KV cache {} tokens{}, router {}{}, speculation {}", engine_->config().num_hidden_layers,
                 opts_.kv_tokens, opts_.prefix_cache ? " with prefix cache" : "", opts_.router.empty() ? "-" : opts_.router,
                 opts_.dispatch.zone.empty() ? "" : ", zone " + opts_.dispatch.zone,
                 opts_.speculative > 0 && drafter_ ? (opts_.scheduler.adaptive_speculation ? "adaptive, up to " : "fixed, ") + std::to_string(opts_.speculative) + " drafts via " + opts_.mtp : "off");
    maintain_later();
    report_later();
    return {
        [this](inbound_atom, const InboundPtr& in) {
          received(in.get());
          on_inbound(*in);
        },
        [this](run_atom, const Continuation& f) {
          received(f.get());
          (*f)();
        },
        [this](drain_atom, const DrainDone& done, int64_t deadline_ms) {
          start_drain(done, deadline_ms);
          report();  // gateways stop sending new requests now, not at the next report
        },
    };
  }

  void on_exit() override {
    quitting_ = true;   // a step loop in flight ends after its step
    compute_.reset();  // finishes the job in flight; its reply still goes out
    transport_.stop();
    // A pending delayed message (the drain cutoff) keeps this object alive until
    // it fires: let go of the model and its sockets (router, drafter) now.
    scheduler_.reset();
    drafter_.reset();
    engine_.reset();
  }

 private:
  struct Client {
    Identity who;
    uint64_t request_id = 0;
  };

  void on_inbound(Inbound& in) {
    if (in.socket != 0 || !in.message) return;
    const wire::Message& m = *in.message;
    try {
      switch (m.header.type) {
        case wire::MsgType::Generate: return on_generate(in);
        case wire::MsgType::Score: return on_score(in);
        case wire::MsgType::Control: return on_control(in);
        default:
          throw wire::WireError(wire::ErrorCode::Unsupported,
                                "attention: cannot handle message type " + std::to_string(static_cast<int>(m.header.type)));
      }
    } catch (const wire::WireError& e) {
      spdlog::warn("attention: {}", e.what());
      transport_.reply(std::move(in.routing), wire::error_message(m.header.request_id, e.code(), e.what()));
    }
  }

  // SIGTERM: no new requests; those running finish, or end with an error
  // just before the deadline, so no client is left waiting on a dead role.
  void start_drain(const DrainDone& done, int64_t deadline_ms) {
    spdlog::info("attention: draining ({} requests running, {} ms to finish)", clients_.size(), deadline_ms);
    drain_.start(done);
    const auto cutoff = std::chrono::milliseconds(std::max<int64_t>(deadline_ms - 500, 0));
    delayed_send(this, cutoff, run_atom::value, continuation([this] {
      std::vector<uint64_t> left;
      for (const auto& [id, c] : clients_) left.push_back(id);
      if (!left.empty()) spdlog::warn("attention: {} requests did not finish before the shutdown deadline", left.size());
      for (uint64_t id : left) {
        cancels_.push_back(id);
        send_error(id, wire::ErrorCode::ShuttingDown, "attention: shut down before this request finished");
      }
      kick();
    }));
    kick();
  }

  void refuse_if_draining() const {
    if (drain_.draining()) throw wire::WireError(wire::ErrorCode::ShuttingDown, "attention: shutting down; not taking new requests");
  }

  void on_generate(Inbound& in) {
    refuse_if_draining();
    GenerationRequest r;
    try {
      r = generation_request_from_json(wire::json_payload(*in.message));
    } catch (const std::invalid_argument& e) {
      throw wire::WireError(wire::ErrorCode::BadFrame, std::string("attention: ") + e.what());
    }
    r.id = next_id_++;
    const Client c{identity_of(in.routing), in.message->header.request_id};
    by_client_[{c.who, c.request_id}] = r.id;
    clients_[r.id] = c;
    queued_.push_back(std::move(r));
    kick();
  }

  // Structured output matches tokens by their bytes: the tokenizer beside the
  // checkpoint gives them (special tokens and ids past it are never allowed).
  void load_token_bytes() {
    const std::filesystem::path dir(opts_.model);
    if (!std::filesystem::exists(dir / "tokenizer.json")) {
      spdlog::info("attention: no tokenizer.json beside the checkpoint; structured output is refused");
      return;
    }
    const auto tk = tok::Tokenizer::load(dir);
    std::vector<std::string> bytes(static_cast<size_t>(engine_->config().vocab_size));
    for (size_t id = 0; id < bytes.size() && id < tk->vocab_size(); ++id)
      if (!tk->is_special(static_cast<int32_t>(id))) bytes[id] = tk->token_bytes(static_cast<int32_t>(id));
    constraints_.emplace(std::make_shared<const grammar::TokenBytes>(std::move(bytes)));
  }

  void on_score(Inbound& in) {
    refuse_if_draining();
    ScoreRequest r = decode_score(*in.message);
    if (r.mtp && !drafter_) throw wire::WireError(wire::ErrorCode::Unsupported, "attention: no mtp-draft role configured for MTP logits");
    scores_.push_back({identity_of(in.routing), in.message->header.request_id, std::move(r)});
    kick();
  }

  void on_control(Inbound& in) {
    AttentionCommand c;
    try {
      c = attention_command_from_json(wire::json_payload(*in.message));
    } catch (const std::invalid_argument& e) {
      throw wire::WireError(wire::ErrorCode::Unsupported, std::string("attention: ") + e.what());
    }
    nlohmann::json r;
    if (c.kind == AttentionCommandKind::Cancel) {
      // Cancels the caller's own Generate with that request id.
      const auto it = by_client_.find({identity_of(in.routing), c.request});
      r["cancelled"] = it != by_client_.end();
      if (it != by_client_.end()) {
        cancels_.push_back(it->second);
        kick();
      }
    } else {
      r = stats_;
      r["clients"] = clients_.size();
      r["draining"] = drain_.draining();  // gateways send it nothing new
      r["dispatch"] = to_json(dispatch_stats(false));
    }
    transport_.reply(std::move(in.routing), json_message(wire::MsgType::Control, in.message->header.request_id, r));
  }

  // This replica's name, endpoint and load to the router, for the gateways.
  void report() {
    if (!router_socket_) return;
    ReplicaReport r;
    r.name = opts_.name;
    r.endpoint = advertise_;
    r.zone = opts_.dispatch.zone;
    r.running = stats_.value("running", int64_t{0});
    r.waiting = stats_.value("waiting", int64_t{0}) + static_cast<int64_t>(queued_.size());
    r.kv_pages_free = stats_.value("kv_pages_free", int64_t{0}) + stats_.value("kv_pages_cached", int64_t{0});
    r.kv_pages_total = stats_.value("kv_pages_total", int64_t{0});
    r.draining = drain_.draining();
    transport_.send(router_socket_, json_message(wire::MsgType::Replica, 0, to_json(r)));
  }

  void report_later() {
    if (!router_socket_) return;
    delayed_send(this, std::chrono::milliseconds(250), run_atom::value, continuation([this] {
      report();
      report_later();
    }));
  }

  // Every dispatcher's counters together (one per micro-batch lane).
  DispatcherStats dispatch_stats(bool take_latencies) const {
    DispatcherStats all;
    for (const ExpertDispatcher* d : dispatchers_) all += d->stats(take_latencies);
    return all;
  }

  // While idle, the dispatchers are kept current (tables, links, subscription)
  // every half second, on the compute thread that owns them.
  void maintain_later() {
    delayed_send(this, std::chrono::milliseconds(500), run_atom::value, continuation([this] {
      if (!busy_ && !dispatchers_.empty()) {
        busy_ = true;
        auto self = caf::actor_cast<caf::actor>(this);
        compute_->post([this, self] {
          for (ExpertDispatcher* d : dispatchers_) d->maintain();
          run_in(self, [this] {
            busy_ = false;
            kick();
          });
        });
      }
      maintain_later();
    }));
  }

  // Starts the next compute job when none is running. The scheduler and engine
  // are touched only by that job, so submissions wait here until it is done.
  void kick() {
    if (busy_) {
      // The step loop hands the scheduler back after its step to take these.
      if (!queued_.empty() || !cancels_.empty() || !scores_.empty()) news_ = true;
      return;
    }
    news_ = false;
    auto self = caf::actor_cast<caf::actor>(this);
    for (auto& r : queued_) {
      const uint64_t id = r.id;
      try {
        if (!r.grammar.empty() && constraints_) {
          try {
            r.constraint = constraints_->get(r.grammar);
          } catch (const grammar::GrammarError& e) {
            throw RequestRefused(e.what());
          }
        }
        scheduler_->submit(std::move(r));
      } catch (const RequestRefused& e) {
        send_error(id, code_of(e.kind()), e.what());
      }
    }
    queued_.clear();
    for (uint64_t id : cancels_) scheduler_->cancel(id);
    cancels_.clear();
    if (!scores_.empty()) {
      busy_ = true;
      auto job = std::make_shared<ScoreJob>(std::move(scores_.front()));
      scores_.pop_front();
      compute_->post([this, self, job] {
        run_score(*job);
        run_in(self, [this] {
          busy_ = false;
          kick();
        });
      });
      return;
    }
    if (scheduler_->idle()) {
      drain_.settle(true);
      return;
    }
    busy_ = true;
    compute_->post([this, self] { step_loop(self); });
  }

  // On the compute thread: steps back to back while the scheduler has work and
  // the actor has nothing for it, each step's tokens sent to the actor without
  // waiting for it (a round trip through the actor per step would sit on every
  // token's path). The scheduler goes back to the actor when it is idle, when
  // submissions, cancels or scores wait, or at exit.
  void step_loop(const caf::actor& self) {
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      auto events = std::make_shared<std::vector<TokenEvent>>(scheduler_->step());
      m_step_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      const int64_t idle = engine_->prefix_cache() ? engine_->prefix_cache()->idle_pages() : 0;
      nlohmann::json st{{"running", scheduler_->running()},
                        {"waiting", scheduler_->waiting()},
                        {"kv_pages_used", engine_->cache().used_pages() - idle},  // held by requests
                        {"kv_pages_cached", idle},                                // the prefix cache's alone
                        {"kv_pages_free", engine_->cache().free_pages()},
                        {"kv_pages_total", engine_->cache().total_pages()},
                        {"drafted", scheduler_->speculation().drafted},
                        {"accepted", scheduler_->speculation().accepted},
                        {"verify_steps", scheduler_->speculation().steps}};
      if (const PrefixCache* pc = engine_->prefix_cache()) {
        const PrefixCacheStats& ps = pc->stats();
        st["prefix_cache"] = {{"pages", ps.pages},
                              {"hit_tokens", ps.hit_tokens},
                              {"prompt_tokens", ps.lookup_tokens},
                              {"requests", ps.lookups},
                              {"inserted_pages", ps.inserted_pages},
                              {"evicted_pages", ps.evicted_pages}};
      }
      const bool more = !news_ && !quitting_ && !scheduler_->idle();
      run_in(self, [this, events, st, more] {
        stats_ = st;
        ++stats_steps_;
        update_metrics(*events);
        stats_["steps"] = stats_steps_;
        deliver(*events);
        if (more) return;
        busy_ = false;
        kick();
      });
      if (!more) return;
    }
  }

  void update_metrics(const std::vector<TokenEvent>& events) {
    m_kv_->Add({{"state", "used"}}).Set(stats_["kv_pages_used"].get<double>());
    m_kv_->Add({{"state", "cached"}}).Set(stats_["kv_pages_cached"].get<double>());
    m_kv_->Add({{"state", "free"}}).Set(stats_["kv_pages_free"].get<double>());
    m_batch_->Set(stats_["running"].get<double>());
    if (m_prefix_pages_ && stats_.contains("prefix_cache")) {
      const auto& pc = stats_["prefix_cache"];
      m_prefix_pages_->Set(pc["pages"].get<double>());
      auto grow = [](prometheus::Counter* c, double now) { c->Increment(std::max(0.0, now - c->Value())); };
      grow(m_prefix_hit_, pc["hit_tokens"].get<double>());
      grow(m_prefix_prompt_, pc["prompt_tokens"].get<double>());
      grow(m_prefix_evicted_, pc["evicted_pages"].get<double>());
    }
    m_queue_->Set(stats_["waiting"].get<double>());
    for (const auto& e : events) {
      if (e.token >= 0) m_tokens_->Increment();
      if (e.finish != FinishReason::None) m_requests_->Add({{"finish", finish_reason_name(e.finish)}}).Increment();
    }
    if (dispatch_metrics_) dispatch_metrics_->update(dispatch_stats(true));
    for (size_t i = 0; i < stats_["drafted"].size(); ++i) {
      const double d = stats_["drafted"][i].get<double>(), a = stats_["accepted"][i].get<double>();
      if (seen_drafted_.size() <= i) {
        seen_drafted_.resize(i + 1, 0);
        seen_accepted_.resize(i + 1, 0);
      }
      m_drafted_->Add({{"position", std::to_string(i)}}).Increment(d - seen_drafted_[i]);
      m_accepted_->Add({{"position", std::to_string(i)}}).Increment(a - seen_accepted_[i]);
      seen_drafted_[i] = d;
      seen_accepted_[i] = a;
    }
  }

  void deliver(const std::vector<TokenEvent>& events) {
    // One Tokens message per request per step.
    std::map<uint64_t, TokensUpdate> out;
    std::vector<uint64_t> order;
    for (const auto& e : events) {
      auto [it, fresh] = out.try_emplace(e.id);
      if (fresh) order.push_back(e.id);
      if (e.token >= 0) {
        it->second.tokens.push_back(e.token);
        if (e.logprobs) it->second.logprobs.push_back(*e.logprobs);
      }
      if (e.finish != FinishReason::None) {
        it->second.finish = e.finish;
        it->second.error = e.error;
        it->second.cached_tokens = e.cached_tokens;
        if (e.finish == FinishReason::Error) it->second.code = e.unavailable ? wire::ErrorCode::NoReplica : wire::ErrorCode::Failed;
      }
    }
    for (uint64_t id : order) send_update(id, out[id]);
  }

  void send_error(uint64_t id, wire::ErrorCode code, const std::string& what) {
    TokensUpdate u;
    u.finish = FinishReason::Error;
    u.error = what;
    u.code = code;
    send_update(id, u);
  }

  void send_update(uint64_t id, const TokensUpdate& u) {
    auto c = clients_.find(id);
    if (c == clients_.end()) return;
    transport_.reply(routing_of(c->second.who), json_message(wire::MsgType::Tokens, c->second.request_id, to_json(u)));
    if (u.finished()) {
      by_client_.erase({c->second.who, c->second.request_id});
      clients_.erase(c);
    }
  }

  struct ScoreJob {
    Identity who;
    uint64_t request_id;
    ScoreRequest request;
  };

  // Every position's logits of each sequence, all in one engine step as eval does
  // (and the MTP module's, from the drafter, one sequence at a time).
  void run_score(const ScoreJob& job) {
    wire::Message r;
    const SeqId base = kScoreSequences + (next_score_ << 12);
    ++next_score_;
    std::vector<StepInput> inputs;
    size_t total = 0;
    for (size_t i = 0; i < job.request.sequences.size(); ++i) {
      inputs.push_back({base + i, job.request.sequences[i], true});
      total += job.request.sequences[i].size();
    }
    try {
      const int64_t V = engine_->config().vocab_size, H = engine_->config().hidden_size;
      StepOutput s = engine_->step(inputs);
      for (const auto& in : inputs) engine_->release(in.seq);
      r.header.type = wire::MsgType::Logits;
      r.header.request_id = job.request_id;
      r.header.dtype = DType::F32;
      r.header.rank = 2;
      r.header.shape = {static_cast<uint32_t>(total), static_cast<uint32_t>(V), 0, 0};
      r.add_payload(s.logits);
      std::vector<float> mtp;
      if (job.request.mtp) {
        for (size_t i = 0; i < inputs.size(); ++i) {
          const SeqChunk& c = s.chunks[i];
          if (c.len < 2) continue;
          DraftCall call{inputs[i].seq, 0, std::vector<int32_t>(inputs[i].tokens.begin() + 1, inputs[i].tokens.end()),
                         s.hidden.data() + c.row * H, 0, {}, true};
          const Draft d = drafter_->draft(call);
          drafter_->release(inputs[i].seq);
          mtp.insert(mtp.end(), d.fed_logits.begin(), d.fed_logits.end());
        }
      }
      r.add_payload(mtp);
    } catch (const std::exception& e) {
      for (const auto& in : inputs) engine_->release(in.seq);
      const bool unavailable = dynamic_cast<const ExpertsUnavailable*>(&e) != nullptr;
      r = wire::error_message(job.request_id, unavailable ? wire::ErrorCode::NoReplica : wire::ErrorCode::Failed,
                              std::string("attention: ") + e.what());
    }
    transport_.reply(routing_of(job.who), std::move(r));
  }

  AttentionOptions opts_;
  zmq::context_t& ctx_;
  Transport transport_;
  std::promise<std::string>* bound_;
  std::string* metrics_url_;
  std::unique_ptr<RoleMetrics> metrics_;
  prometheus::Family<prometheus::Gauge>* m_kv_ = nullptr;
  prometheus::Gauge *m_batch_ = nullptr, *m_queue_ = nullptr, *m_prefix_pages_ = nullptr;
  prometheus::Counter *m_prefix_hit_ = nullptr, *m_prefix_prompt_ = nullptr, *m_prefix_evicted_ = nullptr;
  prometheus::Counter* m_tokens_ = nullptr;
  prometheus::Histogram* m_step_ = nullptr;
  prometheus::Family<prometheus::Counter>*m_drafted_ = nullptr, *m_accepted_ = nullptr, *m_requests_ = nullptr;
  std::vector<double> seen_drafted_, seen_accepted_;
  double load_seconds_ = 0;
  std::unique_ptr<ComputeQueue> compute_ = std::make_unique<ComputeQueue>();
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
  std::optional<grammar::ConstraintCache> constraints_;  // with a tokenizer beside the checkpoint
  std::unique_ptr<RemoteDrafter> drafter_;
  std::vector<ExpertDispatcher*> dispatchers_;  // owned by the engine, one per lane
  std::unique_ptr<DispatcherMetrics> dispatch_metrics_;
  bool busy_ = false;  // the compute thread holds the scheduler and engine
  std::atomic<bool> news_{false};      // the actor has work for the scheduler (set while busy_)
  std::atomic<bool> quitting_{false};
  DrainState drain_;
  std::vector<GenerationRequest> queued_;
  std::vector<uint64_t> cancels_;
  std::deque<ScoreJob> scores_;
  std::map<uint64_t, Client> clients_;
  std::map<std::pair<Identity, uint64_t>, uint64_t> by_client_;
  uint64_t next_id_ = 1, next_score_ = 1, stats_steps_ = 0;
  std::string advertise_;  // this replica's endpoint as gateways reach it
  int router_socket_ = 0;  // its reports to the router (0: no router)
  nlohmann::json stats_ = nlohmann::json::object();
};

}  // namespace

AttentionService::AttentionService(AttentionOptions opts, zmq::context_t& ctx) : opts_(std::move(opts)), ctx_(ctx) {}
AttentionService::~AttentionService() { stop(); }

std::string AttentionService::start() {
  std::promise<std::string> bound;
  auto f = bound.get_future();
  actor_ = actor_system().spawn<AttentionActor>(opts_, &ctx_, &bound, &metrics_url_);
  return f.get();
}

bool AttentionService::drain(std::chrono::milliseconds deadline) { return drain_actor(actor_, deadline); }

void AttentionService::stop() {
  stop_actor(actor_);
}

}  // namespace moemesh
