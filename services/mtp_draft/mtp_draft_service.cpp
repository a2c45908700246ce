#include "services/mtp_draft/mtp_draft_service.h"

#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/compute_queue.h"
#include "actors/drain.h"
#include "actors/mesh_actor.h"
#include "actors/role_metrics.h"
#include "actors/transport.h"
#include "model/kv_cache.h"
#include "model/mtp.h"
#include "services/attention/router_client.h"

namespace moemesh {
namespace {

// DraftRequest: payload 0 hidden f32 [rows, hidden]; payload 1 int32 tokens
// [rows]; payload 2 JSON {seq, base, temperature, top_k, top_p, seed,
// fed_logits}; aux = k. DraftResponse: payload 0 int32 drafts [k]; payload 1
// f32 draft logits [k, vocab] (sampling only, else empty); payload 2 f32 logits
// of the fed rows (when asked, else empty).
DraftCall parse_draft_request(const wire::Message& m, int64_t hidden, nlohmann::json* params) {
  using wire::WireError;
  const wire::Header& h = m.header;
  if (m.payloads.size() != 3) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: DraftRequest needs 3 payload frames");
  if (h.dtype != DType::F32 || h.rank != 2 || h.shape[1] != hidden || h.shape[0] == 0)
    throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: hidden states must be F32 [rows > 0, hidden]");
  const int64_t rows = h.shape[0];
  if (m.payload_size(1) != static_cast<size_t>(rows * 4)) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: tokens must be int32 [rows]");
  if (h.aux > 16) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: at most 16 drafts per request");
  try {
    *params = nlohmann::json::parse(std::string(m.payload_as<char>(2), m.payload_size(2)));
    DraftCall c;
    c.seq = params->at("seq").get<uint64_t>();
    c.base = params->at("base").get<int64_t>();
    c.sampling.temperature = params->value("temperature", 0.0f);
    c.sampling.top_k = params->value("top_k", int64_t{0});
    c.sampling.top_p = params->value("top_p", 1.0f);
    c.sampling.seed = params->value("seed", uint64_t{0});
    c.want_fed_logits = params->value("fed_logits", false);
    c.k = static_cast<int>(h.aux);
    c.tokens.assign(m.payload_as<int32_t>(1), m.payload_as<int32_t>(1) + rows);
    if (c.base < 0) throw std::invalid_argument("base must be >= 0");
    return c;
  } catch (const std::exception& e) {
    throw WireError(wire::ErrorCode::BadFrame, std::string("mtp-draft: bad draft parameters: ") + e.what());
  }
}

class MtpDraftActor : public caf::event_based_actor {
 public:
  MtpDraftActor(caf::actor_config& c, MtpDraftOptions opts, zmq::context_t* ctx, std::promise<std::string>* bound,
                std::string* metrics_url)
      : caf::event_based_actor(c), opts_(std::move(opts)), ctx_(*ctx), transport_(*ctx), bound_(bound), metrics_url_(metrics_url) {}

  caf::behavior make_behavior() override {
    try {
      const auto load_start = std::chrono::steady_clock::now();
      cfg_ = ModelConfig::load(opts_.model);
      if (cfg_.num_nextn_predict_layers < 1) throw std::runtime_error("this model has no MTP layer");
      ckpt_ = std::make_unique<Checkpoint>(opts_.model);
      mtp_ = std::make_unique<MtpModule>(cfg_, *ckpt_);
      if (mtp_->is_moe()) {
        if (opts_.router.empty()) throw std::runtime_error("the MTP layer is a MoE layer: mtp-draft needs a router address");
        moe_ = std::make_unique<RouterClient>(ctx_, opts_.router, cfg_.hidden_size, opts_.activations, opts_.router_timeout);
      }
      const int64_t page = 64;
      cache_ = std::make_unique<LatentKvCache>(kv_geometry(cfg_, 1, page, opts_.kv_tokens, opts_.kv_dtype));
      fwd_.precision = opts_.compute;
      fwd_.ws = &ws_;
      loop_ = std::make_unique<MtpDraftLoop>(
          cfg_.vocab_size, cfg_.hidden_size,
          [this](SeqId s, const std::vector<int32_t>& t, const float* h, std::vector<float>* l) {
            return mtp_cache_step(*mtp_, *cache_, fwd_, moe_.get(), cfg_.vocab_size, s, t, h, l);
          },
          [this](SeqId s, int64_t len) {
            if (len > cache_->length(s))
              throw std::runtime_error("the MTP cache is behind: it holds " + std::to_string(cache_->length(s)) +
                                       " positions, asked to continue from " + std::to_string(len));
            cache_->truncate(s, len);
          });
      const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
      const std::string ep = transport_.start(opts_.bind, caf::actor_cast<caf::actor>(this));
      metrics_ = std::make_unique<RoleMetrics>("mtp-draft", ep, opts_.metrics);
      metrics_->gauge("moemesh_model_load_seconds", "Time this role took to load its part of the model").Add({}).Set(load_seconds);
      *metrics_url_ = metrics_->url();
      auto& requests = metrics_->counter("moemesh_draft_requests_total", "Draft requests answered, by status");
      m_ok_ = &requests.Add({{"status", "ok"}});
      m_failed_ = &requests.Add({{"status", "failed"}});
      m_seconds_ = &metrics_->histogram("moemesh_draft_seconds", "Time to feed and draft one request").Add({}, latency_buckets());
      m_drafted_ = &metrics_->counter("moemesh_draft_tokens_total", "Tokens drafted").Add({});
      m_pages_ = &metrics_->gauge("moemesh_mtp_cache_pages", "Pages of the MTP layer's latent cache, by state");
      bound_->set_value(ep);
    } catch (...) {
      bound_->set_exception(std::current_exception());
      quit();
      return {};
    }
    spdlog::info("mtp-draft: MTP layer {} ({}), cache {} tokens", cfg_.mtp_layer(), mtp_->is_moe() ? "MoE via router" : "dense",
                 opts_.kv_tokens);
    return {
        [this](inbound_atom, const InboundPtr& in) {
          received(in.get());
          on_inbound(in);
        },
        [this](run_atom, const Continuation& f) {
          received(f.get());
          (*f)();
        },
        [this](drain_atom, const DrainDone& done, int64_t) {
          // SIGTERM: drafts asked for are answered, new ones refused (attention goes on without).
          spdlog::info("mtp-draft: draining ({} drafts running)", inflight_);
          drain_.start(done);
          drain_.settle(inflight_ == 0);
        },
    };
  }

  void on_exit() override {
    compute_.reset();  // finishes the job in flight; its reply still goes out
    transport_.stop();
  }

 private:
  void on_inbound(const InboundPtr& in) {
    if (in->socket != 0) return;
    const wire::Header& h = in->message->header;
    try {
      if (h.type == wire::MsgType::Control) {
        const auto j = wire::json_payload(*in->message);
        if (!j.is_object() || j.value("cmd", "") != "release" || !j.contains("seq") || !j["seq"].is_number_unsigned())
          throw wire::WireError(wire::ErrorCode::Unsupported, "mtp-draft: control commands: release {seq}");
        const uint64_t seq = j["seq"].get<uint64_t>();
        compute_->post([this, seq] {
          cache_->release(seq);
          loop_->release(seq);
        });
        return;
      }
      if (drain_.draining()) throw wire::WireError(wire::ErrorCode::ShuttingDown, "mtp-draft: shutting down; not drafting");
      if (h.type != wire::MsgType::DraftRequest)
        throw wire::WireError(wire::ErrorCode::Unsupported, "mtp-draft: cannot handle message type " + std::to_string(static_cast<int>(h.type)));
      nlohmann::json params;
      auto call = std::make_shared<DraftCall>(parse_draft_request(*in->message, cfg_.hidden_size, &params));
      Transport* t = &transport_;
      auto self = caf::actor_cast<caf::actor>(this);
      ++inflight_;
      compute_->post([this, self, in, call, t] {
        call->hidden = in->message->payload_as<float>(0);
        wire::Message r;
        const auto t0 = std::chrono::steady_clock::now();
        try {
          const Draft d = loop_->draft(*call);
          m_ok_->Increment();
          m_drafted_->Increment(static_cast<double>(d.tokens.size()));
          m_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          m_pages_->Add({{"state", "used"}}).Set(static_cast<double>(cache_->used_pages()));
          m_pages_->Add({{"state", "free"}}).Set(static_cast<double>(cache_->free_pages()));
          r.header.type = wire::MsgType::DraftResponse;
          r.header.request_id = in->message->header.request_id;
          r.header.aux = static_cast<uint32_t>(d.tokens.size());
          r.add_payload(d.tokens);
          r.add_payload(d.logits);
          r.add_payload(d.fed_logits);
        } catch (const std::exception& e) {
          m_failed_->Increment();
          r = wire::error_message(in->message->header.request_id, wire::ErrorCode::Failed, std::string("mtp-draft: ") + e.what());
        }
        t->reply(std::move(in->routing), std::move(r));
        run_in(self, [this] {
          --inflight_;
          drain_.settle(inflight_ == 0);
        });
      });
    } catch (const std::exception& e) {
      const auto code = dynamic_cast<const wire::WireError*>(&e) ? static_cast<const wire::WireError&>(e).code() : wire::ErrorCode::BadFrame;
      spdlog::warn("{}", e.what());
      transport_.reply(std::move(in->routing), wire::error_message(h.request_id, code, e.what()));
    }
  }

  int64_t inflight_ = 0;  // drafts on the compute queue
  DrainState drain_;
  MtpDraftOptions opts_;
  zmq::context_t& ctx_;
  Transport transport_;
  std::promise<std::string>* bound_;
  std::string* metrics_url_;
  std::unique_ptr<RoleMetrics> metrics_;
  prometheus::Counter *m_ok_ = nullptr, *m_failed_ = nullptr, *m_drafted_ = nullptr;
  prometheus::Histogram* m_seconds_ = nullptr;
  prometheus::Family<prometheus::Gauge>* m_pages_ = nullptr;
  std::unique_ptr<ComputeQueue> compute_ = std::make_unique<ComputeQueue>();
  ModelConfig cfg_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<MtpModule> mtp_;
  std::unique_ptr<MoeExecutor> moe_;
  std::unique_ptr<LatentKvCache> cache_;
  Workspace ws_;
  ForwardContext fwd_;
  std::unique_ptr<MtpDraftLoop> loop_;
};

}  // namespace

MtpDraftService::MtpDraftService(MtpDraftOptions opts, zmq::context_t& ctx) : opts_(std::move(opts)), ctx_(ctx) {}
MtpDraftService::~MtpDraftService() { stop(); }

std::string MtpDraftService::start() {
  std::promise<std::string> bound;
  auto f = bound.get_future();
  actor_ = actor_system().spawn<MtpDraftActor>(opts_, &ctx_, &bound, &metrics_url_);
  return f.get();
}

bool MtpDraftService::drain(std::chrono::milliseconds deadline) { return drain_actor(actor_, deadline); }

void MtpDraftService::stop() {
  stop_actor(actor_);
}

struct RemoteDrafter::Impl {
  RequestChannel channel;
  int64_t vocab, hidden;
  std::chrono::milliseconds timeout;
  // After a failure, drafts are refused at once until retry_at (backing off up
  // to 30 s), so a dead drafter costs one timeout, not one per request.
  std::chrono::steady_clock::time_point retry_at{};
  std::chrono::milliseconds backoff{1000};
};

RemoteDrafter::RemoteDrafter(zmq::context_t& ctx, const std::string& endpoint, int64_t vocab, int64_t hidden,
                             std::chrono::milliseconds timeout)
    : impl_(new Impl{RequestChannel(ctx, endpoint), vocab, hidden, timeout, {}, std::chrono::milliseconds(1000)}) {}

RemoteDrafter::~RemoteDrafter() = default;

Draft RemoteDrafter::draft(const DraftCall& c) {
  if (std::chrono::steady_clock::now() < impl_->retry_at) throw std::runtime_error("mtp-draft is unavailable (backing off)");
  try {
    Draft d = draft_once(c);
    impl_->backoff = std::chrono::milliseconds(1000);
    return d;
  } catch (const std::exception& e) {
    spdlog::warn("drafter: {}; no drafts for {} ms", e.what(), impl_->backoff.count());
    impl_->retry_at = std::chrono::steady_clock::now() + impl_->backoff;
    impl_->backoff = std::min(impl_->backoff * 2, std::chrono::milliseconds(30000));
    throw;
  }
}

Draft RemoteDrafter::draft_once(const DraftCall& c) {
  const int64_t rows = static_cast<int64_t>(c.tokens.size()), H = impl_->hidden, V = impl_->vocab;
  wire::Message m;
  m.header.type = wire::MsgType::DraftRequest;
  m.header.request_id = impl_->channel.next_id();
  m.header.aux = static_cast<uint32_t>(c.k);
  m.header.dtype = DType::F32;
  m.header.rank = 2;
  m.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(H), 0, 0};
  m.add_payload(c.hidden, rows * H * 4);
  m.add_payload(c.tokens);
  const std::string params = nlohmann::json{{"seq", c.seq}, {"base", c.base}, {"temperature", c.sampling.temperature},
                                            {"top_k", c.sampling.top_k}, {"top_p", c.sampling.top_p},
                                            {"seed", c.sampling.seed}, {"fed_logits", c.want_fed_logits}}
                                 .dump();
  m.add_payload(params.data(), params.size());
  auto r = impl_->channel.call(std::move(m), impl_->timeout);
  if (!r) {
    impl_->channel.reconnect();
    throw std::runtime_error("mtp-draft did not answer within " + std::to_string(impl_->timeout.count()) + " ms");
  }
  if (r->header.type == wire::MsgType::Error)
    throw std::runtime_error(r->payloads.empty() ? "mtp-draft error" : std::string(r->payload_as<char>(0), r->payload_size(0)));
  if (r->header.type != wire::MsgType::DraftResponse || r->payloads.size() != 3 || r->payload_size(0) != static_cast<size_t>(c.k) * 4 ||
      (r->payload_size(1) != 0 && r->payload_size(1) != static_cast<size_t>(c.k * V * 4)) ||
      (c.want_fed_logits && r->payload_size(2) != static_cast<size_t>(rows * V * 4)))
    throw std::runtime_error("malformed DraftResponse");
  Draft d;
  d.tokens.assign(r->payload_as<int32_t>(0), r->payload_as<int32_t>(0) + c.k);
  d.logits.assign(r->payload_as<float>(1), r->payload_as<float>(1) + r->payload_size(1) / 4);
  d.fed_logits.assign(r->payload_as<float>(2), r->payload_as<float>(2) + r->payload_size(2) / 4);
  if (!c.sampling.greedy() && d.logits.size() != static_cast<size_t>(c.k * V)) throw std::runtime_error("DraftResponse lacks draft logits");
  return d;
}

void RemoteDrafter::release(SeqId seq) {
  // No answer expected.
  impl_->channel.send(wire::json_message(wire::MsgType::Control, impl_->channel.next_id(), {{"cmd", "release"}, {"seq", seq}}));
}

}  // namespace moemesh
