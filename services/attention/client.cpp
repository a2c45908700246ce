#include "services/attention/client.h"

namespace moemesh {

AttentionClient::AttentionClient(zmq::context_t& ctx, const std::string& endpoint, std::chrono::milliseconds timeout)
    : channel_(ctx, endpoint, "attention"), timeout_(timeout) {}

TokensUpdate AttentionClient::generate(const GenerationRequest& r, const std::function<void(const TokensUpdate&)>& on_update) {
  const uint64_t id = channel_.next_id();
  channel_.send(wire::json_message(wire::MsgType::Generate, id, to_json(r)));
  TokensUpdate all;
  for (;;) {
    auto m = channel_.wait(id, timeout_);
    if (!m) {
      channel_.reconnect();
      throw MeshError(wire::ErrorCode::Timeout, "the attention role sent nothing for " + std::to_string(timeout_.count()) + " ms");
    }
    TokensUpdate u;
    if (m->header.type == wire::MsgType::Error) {
      u = tokens_update_from_error(*m);
    } else if (m->header.type == wire::MsgType::Tokens) {
      try {
        u = tokens_update_from_json(wire::json_payload(*m));
      } catch (const std::exception& e) {
        throw MeshError(wire::ErrorCode::BadFrame, std::string("a malformed Tokens update: ") + e.what());
      }
    } else {
      throw MeshError(wire::ErrorCode::BadFrame, "unexpected reply to Generate");
    }
    all.tokens.insert(all.tokens.end(), u.tokens.begin(), u.tokens.end());
    all.logprobs.insert(all.logprobs.end(), u.logprobs.begin(), u.logprobs.end());
    if (on_update) on_update(u);
    if (u.finished()) {
      all.finish = u.finish;
      all.error = u.error;
      all.code = u.code;
      all.cached_tokens = u.cached_tokens;
      return all;
    }
  }
}

AttentionClient::Scores AttentionClient::score(const std::vector<std::vector<int32_t>>& sequences, bool mtp) {
  auto r = channel_.call(encode_score(channel_.next_id(), ScoreRequest{sequences, mtp}), timeout_);
  if (!r) {
    channel_.reconnect();
    throw MeshError(wire::ErrorCode::Timeout, "the attention role did not answer a Score within " + std::to_string(timeout_.count()) + " ms");
  }
  if (r->header.type == wire::MsgType::Error) throw error_of(*r);
  if (r->header.type != wire::MsgType::Logits || r->payloads.size() != 2) throw MeshError(wire::ErrorCode::BadFrame, "unexpected reply to Score");
  Scores s;
  s.logits.assign(r->payload_as<float>(0), r->payload_as<float>(0) + r->payload_size(0) / 4);
  s.mtp_logits.assign(r->payload_as<float>(1), r->payload_as<float>(1) + r->payload_size(1) / 4);
  return s;
}

nlohmann::json AttentionClient::command(const AttentionCommand& c) {
  auto r = channel_.call(wire::json_message(wire::MsgType::Control, channel_.next_id(), to_json(c)), std::chrono::milliseconds(10000));
  if (!r) {
    channel_.reconnect();
    throw MeshError(wire::ErrorCode::Timeout, "the attention role did not answer a command within 10000 ms");
  }
  if (r->header.type == wire::MsgType::Error) throw error_of(*r);
  return wire::json_payload(*r);
}

}  // namespace moemesh
