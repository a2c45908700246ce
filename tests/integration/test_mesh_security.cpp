// CURVE between roles, every role its own process (docs/SECURITY.md): a host
// whose key is not in the keyring, or that reports under another host's name,
// is refused and counted while generation goes on; a client without a key gets
// nothing from an expert host; what crosses the loopback (a request, the hosts'
// reports, a known activation dispatched to a host) holds nothing in clear.
#include <fstream>
#include <iterator>
#include <thread>

#include "actors/curve.h"
#include "actors/wire_message.h"
#include "core/model_config.h"
#include "services/expert_host/api.h"
#include "services/mesh/child_process.h"
#include "tests/integration/mesh_fixture.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

std::filesystem::path keyring_of(TestMesh& m) {
  const auto cfg = nlohmann::json::parse(std::ifstream(m.mesh->config_file()));
  return cfg["security"]["keys"].get<std::string>();
}

TokensUpdate generate(TestMesh& m, int64_t n, const std::string& grammar = {}) {
  AttentionClient c(m.ctx, m.ep.attention);
  GenerationRequest r;
  r.prompt = {0, 5, 9, 11};
  r.max_new_tokens = n;
  r.grammar = grammar;
  return c.generate(r);
}

// A host process under `keys` (a keyring folder), named `name`, dialling the mesh's router.
std::unique_ptr<ChildProcess> rogue_host(TestMesh& m, const std::string& name, const std::filesystem::path& keys) {
  auto p = std::make_unique<ChildProcess>(std::vector<std::string>{
      moemesh_bin(), "serve", "expert-host", "--config", m.mesh->config_file().string(), "--name", name, "--experts", "all", "--set",
      "router.connect=" + m.ep.router, "--set", "security.keys=" + keys.string(), "--set", "security.curve=on"});
  EXPECT_NE(p->read_line(std::chrono::seconds(60)), "") << name << " started";
  return p;
}

bool listed(const nlohmann::json& stats, const std::string& name) {
  for (const auto& h : stats["hosts"])
    if (h["name"] == name) return true;
  return false;
}

}  // namespace

TEST(MeshSecurity, UnknownKeysAndBorrowedNamesAreRefusedAndCountedWhileGenerationGoesOn) {
  TestMesh m("curve", {kOneHost, "security.curve=on"});
  ASSERT_TRUE(curve::keyring()) << "the test process joined the run's keyring";
  const auto keys = keyring_of(m);
  EXPECT_EQ(generate(m, 6).finish, FinishReason::Length) << "the mesh generates with CURVE on";

  // A host with a key of its own, not in the keyring (it knows the router's public key).
  const auto stranger = temp_dir("curve-stranger");
  std::filesystem::create_directories(stranger / "router");
  std::filesystem::copy_file(keys / "router/router.pub", stranger / "router/router.pub");
  curve::Keyring::write(stranger, "expert-host", "intruder", curve::generate());
  auto intruder = rogue_host(m, "intruder", stranger);
  EXPECT_TRUE(eventually([&] { return m.router_stats().value("refused_connections", 0) >= 1; }, std::chrono::seconds(20)))
      << m.router_stats().dump();
  // A host's real key under another name: admitted by CURVE, refused by the router.
  const auto borrowed = temp_dir("curve-borrowed");
  std::filesystem::create_directories(borrowed / "router");
  std::filesystem::create_directories(borrowed / "expert-host");
  std::filesystem::copy_file(keys / "router/router.pub", borrowed / "router/router.pub");
  std::filesystem::copy_file(keys / "expert-host/experts-0.key", borrowed / "expert-host/experts-9.key");
  std::filesystem::copy_file(keys / "expert-host/experts-0.pub", borrowed / "expert-host/experts-9.pub");
  auto impostor = rogue_host(m, "experts-9", borrowed);
  EXPECT_TRUE(eventually([&] { return m.router_stats().value("refused_hosts", 0) >= 1; }, std::chrono::seconds(20)))
      << m.router_stats().dump();

  const auto stats = m.router_stats();
  EXPECT_FALSE(listed(stats, "intruder")) << stats.dump();
  EXPECT_FALSE(listed(stats, "experts-9")) << stats.dump();
  EXPECT_TRUE(listed(stats, "experts-0"));
  EXPECT_EQ(generate(m, 6).finish, FinishReason::Length) << "generation unaffected";

  // A client with no key at all: the expert host never answers it.
  zmq::socket_t raw(m.ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(m.ep.expert_hosts.at(0));
  auto probe = wire::json_message(wire::MsgType::Control, 1, {{"command", "stats"}});
  wire::send(raw, probe);
  zmq::pollitem_t item{static_cast<void*>(raw), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(1500)), 0) << "no answer without a key";
  intruder->stop(SIGTERM);
  impostor->stop(SIGTERM);
}

namespace {
// A known activation: one row of distinct f32 values, dispatched to the first
// expert host as attention would (under CURVE with the attention role's key).
std::vector<float> known_row(int64_t hidden) {
  std::vector<float> x(static_cast<size_t>(hidden));
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f + static_cast<float>(i) / 1024.0f;
  return x;
}

void dispatch_known_row(TestMesh& m, bool sealed, const std::string& host) {
  const ModelConfig mc = ModelConfig::load(test_model("tiny", true));
  if (sealed)
    curve::enable(curve::Keyring::load(keyring_of(m), {{"gateway", "gateway"}, {"admin", "admin"}, {"attention", "attention"}}));
  zmq::socket_t s(m.ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  curve::dial(s, m.ep.expert_hosts.at(0), "expert-host", host);
  s.connect(m.ep.expert_hosts.at(0));
  const auto x = known_row(mc.hidden_size);
  std::vector<int32_t> experts(static_cast<size_t>(mc.num_experts_per_tok), -1);
  std::vector<float> weights(experts.size(), 0.0f);
  experts[0] = 0;
  weights[0] = 1.0f;
  auto d = encode_dispatch(7, static_cast<int32_t>(mc.first_k_dense_replace), 0, x.data(), 1, mc.hidden_size, experts, weights,
                           mc.num_experts_per_tok, WireActivations::F32);
  wire::send(s, d);
  zmq::pollitem_t item{static_cast<void*>(s), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(5000)), 1) << "the host answered the dispatch";
}

// The bytes tcpdump saw on the loopback while `work` ran.
std::string captured(const std::string& tag, const std::function<void()>& work) {
  const auto pcap = temp_dir(tag) / "lo.pcap";
  ChildProcess dump({"/bin/sh", "-c", "exec tcpdump -i lo -U -s 0 -w " + pcap.string() + " tcp 2>/dev/null"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // listening
  work();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  dump.stop(SIGTERM);
  std::ifstream in(pcap, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST(MeshSecurity, CapturedLoopbackTrafficHoldsNothingInClear) {
  if (std::system("tcpdump --version > /dev/null 2>&1") != 0 || geteuid() != 0)
    GTEST_SKIP() << "capturing needs tcpdump (scripts/setup.sh installs it) and root";
  // A string that crosses two hops in every Generate (gateway side to attention),
  // and host names in every report (host to router).
  // All three unique to this test: other tests' meshes talk on the same loopback meanwhile.
  const std::string canary = "CANARY-7Q4Z-in-the-grammar", host = "sealed-host-7q4z";
  const auto row = known_row(ModelConfig::load(test_model("tiny", true)).hidden_size);
  const std::string activation(reinterpret_cast<const char*>(row.data()), 64);  // its first 16 values, as sent in f32
  auto run = [&](const std::string& curve) {
    return captured("capture-" + curve, [&] {
      TestMesh m("capture-" + curve, {R"(expert_hosts=[{"name": ")" + host + R"(", "experts": "all"}])", "security.curve=" + curve,
                                      "mtp_draft.enabled=false"});
      generate(m, 4, "root ::= \"" + canary + "\"");
      generate(m, 4);
      dispatch_known_row(m, curve == "on", host);
    });
  };
  const std::string plain = run("off");
  // No file at all: tcpdump could not open the loopback here (no capture rights in this container).
  if (plain.empty()) GTEST_SKIP() << "tcpdump could not capture on lo here";
  ASSERT_GT(plain.size(), 1000u) << "something was captured";
  EXPECT_NE(plain.find(canary), std::string::npos) << "without CURVE the capture sees the request (the test can see)";
  EXPECT_NE(plain.find(host), std::string::npos);
  EXPECT_NE(plain.find(activation), std::string::npos) << "and the activation's bytes";
  const std::string sealed = run("on");
  ASSERT_GT(sealed.size(), 1000u);
  EXPECT_EQ(sealed.find(canary), std::string::npos) << "with CURVE nothing of the request in clear";
  EXPECT_EQ(sealed.find(host), std::string::npos) << "nor of the hosts' reports";
  EXPECT_EQ(sealed.find(activation), std::string::npos) << "nor the activation's bytes";
}
