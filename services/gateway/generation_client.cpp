#include "services/gateway/generation_client.h"

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
    socket_ = transport_.connect(attention_);
    return {
        [this](submit_atom, const SubmissionPtr& s) {
          pending_[s->id] = s;
          transport_.send(socket_, wire::json_message(wire::MsgType::Generate, s->id, generate_request_json(s->request)));
        },
        [this](cancel_atom, uint64_t id) {
          if (!pending_.count(id)) return;
          transport_.send(socket_, wire::json_message(wire::MsgType::Control, 0, {{"cmd", "cancel"}, {"request", id}}));
        },
        [this](stats_atom, const StatsCallback& cb) {
          const uint64_t id = next_stats_++;
          stats_[id] = cb;
          transport_.send(socket_, wire::json_message(wire::MsgType::Control, id, {{"cmd", "stats"}}));
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
    for (auto& [id, s] : pending_) s->on_update({{}, "error", "the gateway is shutting down"});
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
      u.finish = "error";
      u.error = m.payloads.empty() ? "error" : std::string(m.payload_as<char>(0), m.payload_size(0));
    } else if (m.header.type == wire::MsgType::Tokens) {
      try {
        const auto j = wire::json_payload(m);
        u.tokens = j.at("tokens").get<std::vector<int32_t>>();
        u.finish = j.value("finish", "");
        u.error = j.value("error", "");
      } catch (const std::exception& e) {
        u.finish = "error";
        u.error = std::string("malformed Tokens message: ") + e.what();
      }
    } else {
      return;
    }
    auto s = it->second;
    if (!u.finish.empty()) pending_.erase(it);
    s->on_update(u);
  }

  Transport transport_;
  std::string attention_;
  int socket_ = 0;
  std::map<uint64_t, SubmissionPtr> pending_;
  std::map<uint64_t, StatsCallback> stats_;
  uint64_t next_stats_ = uint64_t{1} << 62;  // apart from generation ids
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
