#include "generation_client.h"

#include <map>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/mesh_actor.h"
#include "actors/transport.h"

namespace moemesh {
namespace {

using submit_atom = caf::atom_constant<caf::atom("submit")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using StatsCallback = std::shared_ptr<std::function<void(const nlohmann::json&)>>;

// Request ids on the connection to attention: generations count from 1, stats
// requests from 2^62, and cancel acknowledgements come back as 0 (ignored).
constexpr uint64_t kFirstStats = uint64_t{1} << 62;
constexpr uint64_t kCancelAcks = 0;

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

class ClientActor : public caf::event_based_actor {
 public:
  ClientActor(caf::actor_config& c, zmq::context_t* ctx, std::string attention)
      : caf::event_based_actor(c), transport_(*ctx), attention_(std::move(attention)) {}

  caf::behavior make_behavior() override {
    transport_.start("", caf::actor_cast<caf::actor>(this));
    socket_ = transport_.connect(attention_, false, "attention");
    return {
        [this](submit_atom, const SubmissionPtr& s) {
          pending_[s->id] = s;
          transport_.send(socket_, wire::json_message(wire::MsgType::Generate, s->id, to_json(s->request)));
        },
        [this](cancel_atom, uint64_t id) {
          if (!pending_.count(id)) return;
          transport_.send(socket_, wire::json_message(wire::MsgType::Control, kCancelAcks, to_json(AttentionCommand{AttentionCommandKind::Cancel, id})));
        },
        [this](stats_atom, const StatsCallback& cb) {
          const uint64_t id = next_stats_++;
          stats_[id] = cb;
          transport_.send(socket_, wire::json_message(wire::MsgType::Control, id, to_json(AttentionCommand{})));
          delayed_send(this, std::chrono::seconds(1), deadline_atom::value, id);
        },
        [this](deadline_atom, uint64_t id) {
          auto it = stats_.find(id);
          if (it == stats_.end()) return;
          (*it->second)(nlohmann::json());
          stats_.erase(it);
        },
        [this](inbound_atom, const InboundPtr& in) { on_reply(*in->message); },
    };
  }

  void on_exit() override {
    transport_.stop();
    for (auto& [id, s] : pending_) {
      TokensUpdate u;
      u.finish = FinishReason::Error;
      u.code = wire::ErrorCode::ShuttingDown;
      u.error = "the gateway is shutting down";
      s->on_update(u);
    }
    pending_.clear();
  }

 private:
  void on_reply(const wire::Message& m) {
    if (m.header.type == wire::MsgType::Control) {
      auto st = stats_.find(m.header.request_id);
      if (st == stats_.end()) return;
      nlohmann::json j;
      try {
        j = wire::json_payload(m);
      } catch (const wire::WireError&) {
      }
      (*st->second)(j);
      stats_.erase(st);
      return;
    }
    auto it = pending_.find(m.header.request_id);
    if (it == pending_.end()) return;  // cancel acknowledgements, late replies
    TokensUpdate u;
    if (m.header.type == wire::MsgType::Error) {
      u = tokens_update_from_error(m);
    } else if (m.header.type == wire::MsgType::Tokens) {
      try {
        u = tokens_update_from_json(wire::json_payload(m));
      } catch (const std::exception& e) {
        u = TokensUpdate{};
        u.finish = FinishReason::Error;
        u.code = wire::ErrorCode::BadFrame;
        u.error = std::string("malformed Tokens message: ") + e.what();
      }
    } else {
      return;
    }
    auto s = it->second;
    if (u.finished()) pending_.erase(it);
    s->on_update(u);
  }

  Transport transport_;
  std::string attention_;
  int socket_ = 0;
  std::map<uint64_t, SubmissionPtr> pending_;
  std::map<uint64_t, StatsCallback> stats_;
  uint64_t next_stats_ = kFirstStats;
};

std::atomic<uint64_t> g_next_id{1};

}  // namespace

GenerationClient::GenerationClient(zmq::context_t& ctx, const std::string& attention)
    : actor_(actor_system().spawn<ClientActor>(&ctx, attention)) {}

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
