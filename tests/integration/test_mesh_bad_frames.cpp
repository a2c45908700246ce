// Every role answers a malformed frame with an Error message and keeps serving.
#include "actors/wire_message.h"
#include "tests/integration/mesh_fixture.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

// Sends raw frames on a fresh DEALER socket; returns the reply, if any.
std::optional<wire::Message> send_raw(zmq::context_t& ctx, const std::string& endpoint, const std::vector<std::string>& frames) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, 10000);
  s.connect(endpoint);
  for (size_t i = 0; i < frames.size(); ++i)
    s.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  return wire::receive(s);
}

std::string header_bytes(wire::MsgType type, std::vector<size_t> payloads, uint64_t request_id = 7) {
  wire::Header h;
  h.type = type;
  h.request_id = request_id;
  h.payloads = static_cast<uint8_t>(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) h.payload_bytes[i] = payloads[i];
  const auto b = wire::encode_header(h);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void expect_error(const std::optional<wire::Message>& r, const std::string& what) {
  ASSERT_TRUE(r.has_value()) << what << ": no reply";
  EXPECT_EQ(r->header.type, wire::MsgType::Error) << what;
}

}  // namespace

TEST(MeshBadFrames, EveryRoleAnswersWithAnErrorAndKeepsServing) {
  TestMesh m("mesh-bad", {});
  const std::vector<std::pair<std::string, std::string>> roles{
      {"router", m.ep.router}, {"attention", m.ep.attention}, {"mtp-draft", m.ep.mtp}, {"expert-host", m.ep.expert_hosts[0]}};
  for (const auto& [role, ep] : roles) {
    SCOPED_TRACE(role);
    std::string bad_magic = header_bytes(wire::MsgType::Hello, {});
    bad_magic[0] ^= 0x55;
    expect_error(send_raw(m.ctx, ep, {"garbage"}), "a short frame");
    expect_error(send_raw(m.ctx, ep, {bad_magic}), "a bad magic number");
    std::string bad_type = header_bytes(wire::MsgType::Hello, {});
    bad_type[6] = 99;  // type field, little-endian low byte
    expect_error(send_raw(m.ctx, ep, {bad_type}), "an unknown message type");
    expect_error(send_raw(m.ctx, ep, {header_bytes(wire::MsgType::Control, {5}), "12"}), "a payload of the wrong size");
    expect_error(send_raw(m.ctx, ep, {header_bytes(wire::MsgType::Control, {9}), "{not json"}), "invalid JSON");
    expect_error(send_raw(m.ctx, ep, {header_bytes(wire::MsgType::Dispatch, {3}), "abc"}), "a dispatch that is not [rows, hidden]");
  }
  // All still serve.
  EXPECT_TRUE(m.router_stats()["hosts"].size() == 2);
  EXPECT_GE(m.router_stats()["bad_frames"].get<int64_t>() + m.router_stats()["errors"].get<int64_t>(), 6);
  AttentionClient c(m.ctx, m.ep.attention);
  const auto s = c.score({1, 2, 3, 4}, true);
  EXPECT_EQ(s.logits.size(), 4u * 1024);
  EXPECT_EQ(s.mtp_logits.size(), 3u * 1024);
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.max_new_tokens = 5;
  EXPECT_EQ(c.generate(r).tokens.size(), 5u);
  const auto hello = send_raw(m.ctx, m.ep.expert_hosts[0], {header_bytes(wire::MsgType::Hello, {})});
  ASSERT_TRUE(hello.has_value());
  EXPECT_EQ(hello->header.type, wire::MsgType::Hello);
}
