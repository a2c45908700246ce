// The mtp-draft role as an actor: DraftRequest and release on its ROUTER
// socket, the MTP layer and its cache on its compute queue.
#include <unistd.h>

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
#include "services/mtp_draft/api.h"

namespace moemesh {
namespace {

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
        DispatcherOptions d = opts_.dispatch;
        d.name = "mtp-draft-" + std::to_string(::getpid());
        auto dispatcher = std::make_unique<ExpertDispatcher>(ctx_, cfg_, *ckpt_, std::vector<int64_t>{cfg_.mtp_layer()}, opts_.router, d);
        dispatcher_ = dispatcher.get();
        moe_ = std::move(dispatcher);
      }
      const int64_t page = 64;
      cache_ = std::make_unique<LatentKvCache>(kv_geometry(cfg_, 1, page, opts_.kv_tokens, opts_.kv_dtype));
      fwd_.precision = opts_.compute;
      fwd_.ws = &ws_;
      loop_ = std::make_unique<MtpDraftLoop>(
          cfg_.vocab_size, cfg_.hidden_size,
          [this](const std::vector<MtpRows>& rows, std::vector<float>& logits) {
            return mtp_cache_step(*mtp_, *cache_, fwd_, moe_.get(), cfg_.vocab_size, rows, logits);
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
      transport_.count_drops_in(*metrics_);
      metrics_->gauge("moemesh_model_load_seconds", "Time this role took to load its part of the model").Add({}).Set(load_seconds);
      *metrics_url_ = metrics_->url();
      auto& requests = metrics_->counter("moemesh_draft_requests_total", "Draft requests answered, by status");
      m_ok_ = &requests.Add({{"status", "ok"}});
      m_failed_ = &requests.Add({{"status", "failed"}});
      m_seconds_ = &metrics_->histogram("moemesh_draft_seconds", "Time to feed and draft one request").Add({}, latency_buckets());
      m_drafted_ = &metrics_->counter("moemesh_draft_tokens_total", "Tokens drafted").Add({});
      m_pages_ = &metrics_->gauge("moemesh_mtp_cache_pages", "Pages of the MTP layer's latent cache, by state");
      if (dispatcher_) dispatch_metrics_ = std::make_unique<DispatcherMetrics>(*metrics_, false);
      bound_->set_value(ep);
    } catch (...) {
      bound_->set_exception(std::current_exception());
      quit();
      return {};
    }
    spdlog::info("mtp-draft: MTP layer {} ({}), cache {} tokens, drafts from {}", cfg_.mtp_layer(),
                 mtp_->is_moe() ? "MoE dispatched to the expert hosts" : "dense", opts_.kv_tokens,
                 mtp_->draft_vocab_size() < cfg_.vocab_size
                     ? std::to_string(mtp_->draft_vocab_size()) + " of " + std::to_string(cfg_.vocab_size) + " tokens (" +
                           kDraftVocabFile + ": " + mtp_->draft_vocab_source() + ")"
                     : std::string("the whole vocabulary"));
    maintain_later();
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
    if (in->socket != 0 || !in->message) return;
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
      auto calls = std::make_shared<std::vector<DraftCall>>(decode_draft_request(*in->message, cfg_.hidden_size));
      Transport* t = &transport_;
      auto self = caf::actor_cast<caf::actor>(this);
      ++inflight_;
      compute_->post([this, self, in, calls, t] {
        wire::Message r;
        const auto t0 = std::chrono::steady_clock::now();
        try {
          const std::vector<Draft> d = loop_->draft(*calls);
          m_ok_->Increment();
          for (const auto& one : d) m_drafted_->Increment(static_cast<double>(one.tokens.size()));
          m_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          m_pages_->Add({{"state", "used"}}).Set(static_cast<double>(cache_->used_pages()));
          m_pages_->Add({{"state", "free"}}).Set(static_cast<double>(cache_->free_pages()));
          r = encode_draft_response(in->message->header.request_id, d);
        } catch (const std::exception& e) {
          m_failed_->Increment();
          const bool unavailable = dynamic_cast<const ExpertsUnavailable*>(&e) != nullptr;
          r = wire::error_message(in->message->header.request_id, unavailable ? wire::ErrorCode::NoReplica : wire::ErrorCode::Failed,
                                  std::string("mtp-draft: ") + e.what());
        }
        t->reply(std::move(in->routing), std::move(r));
        run_in(self, [this] {
          if (dispatch_metrics_) dispatch_metrics_->update(dispatcher_->stats(true));
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

  // While idle, the dispatcher is kept current (tables, links, subscription).
  void maintain_later() {
    delayed_send(this, std::chrono::milliseconds(500), run_atom::value, continuation([this] {
      if (dispatcher_ && inflight_ == 0) compute_->post([this] { dispatcher_->maintain(); });
      maintain_later();
    }));
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
  ExpertDispatcher* dispatcher_ = nullptr;  // moe_, when the MTP layer is a MoE layer
  std::unique_ptr<DispatcherMetrics> dispatch_metrics_;
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

}  // namespace moemesh
