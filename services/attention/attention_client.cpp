#include "services/attention/attention_client.h"

namespace moemesh {
namespace {
std::string error_text(const wire::Message& m) {
  return m.payloads.empty() ? "error" : std::string(m.payload_as<char>(0), m.payload_size(0));
}
using wire::json_message;
}  // namespace

AttentionClient::AttentionClient(zmq::context_t& ctx, const std::string& endpoint, std::chrono::milliseconds timeout)
    : channel_(ctx, endpoint), timeout_(timeout) {}

TokensUpdate AttentionClient::generate(const GenerationRequest& r, const std::function<void(const TokensUpdate&)>& on_update) {
  const uint64_t id = channel_.next_id();
  channel_.send(json_message(wire::MsgType::Generate, id, generate_request_json(r)));
  TokensUpdate all;
  for (;;) {
    auto m = channel_.wait(id, timeout_);
    if (!m) {
      channel_.reconnect();
      throw MeshError("the attention role sent nothing for " + std::to_string(timeout_.count()) + " ms");
    }
    if (m->header.type == wire::MsgType::Error) throw MeshError(error_text(*m));
    if (m->header.type != wire::MsgType::Tokens) throw MeshError("unexpected reply to Generate");
    const auto j = wire::json_payload(*m);
    TokensUpdate u;
    u.tokens = j.at("tokens").get<std::vector<int32_t>>();
    u.finish = j.value("finish", "");
    u.error = j.value("error", "");
    all.tokens.insert(all.tokens.end(), u.tokens.begin(), u.tokens.end());
    if (on_update) on_update(u);
    if (!u.finish.empty()) {
      all.finish = u.finish;
      all.error = u.error;
      return all;
    }
  }
}

AttentionClient::Scores AttentionClient::score(const std::vector<std::vector<int32_t>>& sequences, bool mtp) {
  std::vector<int32_t> tokens, lengths;
  for (const auto& s : sequences) {
    tokens.insert(tokens.end(), s.begin(), s.end());
    lengths.push_back(static_cast<int32_t>(s.size()));
  }
  wire::Message m;
  m.header.type = wire::MsgType::Score;
  m.header.request_id = channel_.next_id();
  m.header.aux = mtp ? 1 : 0;
  m.add_payload(tokens);
  m.add_payload(lengths);
  auto r = channel_.call(std::move(m), timeout_);
  if (!r) {
    channel_.reconnect();
    throw MeshError("the attention role did not answer a Score within " + std::to_string(timeout_.count()) + " ms");
  }
  if (r->header.type == wire::MsgType::Error) throw MeshError(error_text(*r));
  if (r->header.type != wire::MsgType::Logits || r->payloads.size() != 2) throw MeshError("unexpected reply to Score");
  Scores s;
  s.logits.assign(r->payload_as<float>(0), r->payload_as<float>(0) + r->payload_size(0) / 4);
  s.mtp_logits.assign(r->payload_as<float>(1), r->payload_as<float>(1) + r->payload_size(1) / 4);
  return s;
}

nlohmann::json control_call(zmq::context_t& ctx, const std::string& endpoint, const nlohmann::json& command,
                            std::chrono::milliseconds timeout) {
  RequestChannel ch(ctx, endpoint);
  const uint64_t id = ch.next_id();
  auto r = ch.call(json_message(wire::MsgType::Control, id, command), timeout);
  if (!r) throw MeshError(endpoint + " did not answer within " + std::to_string(timeout.count()) + " ms");
  if (r->header.type == wire::MsgType::Error) throw MeshError(error_text(*r));
  return wire::json_payload(*r);
}

}  // namespace moemesh
