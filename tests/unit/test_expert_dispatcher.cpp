// The dispatcher with a fixed placement (eval --expert-host) against expert
// hosts over ZeroMQ (tcp loopback): the same logits as in one process in every
// wire encoding; bad frames are answered with an error and the host keeps
// serving; a host that is not there or answers garbage fails the step clearly.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <mutex>
#include <thread>

#include "actors/wire_message.h"
#include "model/eval.h"
#include "services/expert_host/api.h"
#include "services/expert_host/client.h"
#include "services/router/api.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {
// An expert host (the role's actor, not registered with any router) on a free loopback port.
struct HostThread {
  ModelConfig cfg;
  zmq::context_t ctx{1};
  ExpertHostService service;
  std::string endpoint;
  std::vector<int32_t> ids;

  static ExpertHostOptions options(const std::filesystem::path& dir, const std::vector<int32_t>& experts) {
    ExpertHostOptions o;  // loopback, any port, no router
    o.model = dir.string();
    o.experts = experts;
    o.compute = cpu::Precision::Exact;  // as the engines compared with: f32 activations even where bf16 dot products exist
    return o;
  }
  HostThread(const std::filesystem::path& dir, std::vector<int32_t> experts)
      : cfg(ModelConfig::load(dir)), service(options(dir, experts), ctx), ids(experts) {
    endpoint = service.start();
  }
  const std::vector<int32_t>& experts() const { return ids; }
  // Dispatches served so far, from the host's own Hello report.
  uint64_t dispatches() {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::rcvtimeo, 5000);
    s.set(zmq::sockopt::linger, 0);
    s.connect(endpoint);
    wire::Message hello;
    hello.header.type = wire::MsgType::Hello;
    wire::send(s, hello);
    auto r = wire::receive(s);
    if (!r) return 0;
    return nlohmann::json::parse(std::string(r->payload_as<char>(0), r->payload_size(0)))["dispatches"].get<uint64_t>();
  }
};

DispatcherOptions dispatch_options(WireActivations w) {
  DispatcherOptions d;
  d.name = "test";
  d.activations = w;
  return d;
}

std::vector<float> all_logits(Engine& e, const std::vector<int32_t>& tokens) {
  StepOutput s = e.step({{1, tokens, true}});
  e.release(1);
  return s.logits;
}
}  // namespace

TEST(ExpertDispatcher, ExpertHostsComputeWhatOneProcessComputes) {
  const auto& dir = test_model("tiny", true);
  HostThread a(dir, {0, 1, 2, 3, 4, 5, 6, 7}), b(dir, {8, 9, 10, 11, 12, 13, 14, 15});
  // f32 products and latent cache, so f32 on the wire differs only by summation order.
  EngineOptions exact;
  exact.compute = cpu::Precision::Exact;
  exact.kv_dtype = KvCacheDtype::F32;
  Engine local(dir, exact);
  zmq::context_t ctx;
  const auto tokens = random_tokens(24, local.config().vocab_size, 3);
  const auto want = all_logits(local, tokens);
  for (auto wire : {WireActivations::F32, WireActivations::BF16, WireActivations::FP8}) {
    EngineOptions o = exact;
    ExpertDispatcher* dispatcher = nullptr;
    o.make_moe = [&](const ModelConfig& c, const Checkpoint& ck, const std::vector<int64_t>& layers) {
      auto d = std::make_unique<ExpertDispatcher>(ctx, c, ck, layers,
                                                  std::vector<StaticExpertHost>{{"a", a.endpoint, "", a.experts()},
                                                                                {"b", b.endpoint, "", b.experts()}},
                                                  dispatch_options(wire));
      dispatcher = d.get();
      return d;
    };
    Engine remote(dir, o);
    const auto t0 = std::chrono::steady_clock::now();
    const auto got = all_logits(remote, tokens);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Every call's time is accounted for, phase by phase, and the hosts said how long they computed.
    const DispatcherStats st = dispatcher->stats();
    EXPECT_EQ(st.phases.calls, st.calls);
    EXPECT_GT(st.calls, 0u);
    EXPECT_GT(st.phases.host_compute, 0.0) << "no Combine carried its host's compute time";
    EXPECT_LE(st.phases.host_compute, elapsed) << "the slowest answers' compute, summed over the calls, within the step";
    EXPECT_LE(st.phases.gate + st.phases.send + st.phases.wait + st.phases.sum, elapsed);
    if (wire != WireActivations::FP8) {
      // f32 on the wire: only the order of summing the two hosts' partial sums differs;
      // bf16 activations: their rounding (2^-9 relative) through the experts.
      const Diff d = compare(got, want);
      const double tol = wire == WireActivations::F32 ? 1e-5 : 2e-2;
      EXPECT_LE(d.max_abs, tol * d.max_ref) << "wire " << int(wire) << ": " << d.max_abs << " of " << d.max_ref;
    } else {
      // e4m3 keeps 3 mantissa bits (up to 6% per value): compare in the mean.
      double num = 0, den = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        num += double(got[i] - want[i]) * (got[i] - want[i]);
        den += double(want[i]) * want[i];
      }
      EXPECT_LE(std::sqrt(num / den), 0.1) << "fp8 dispatch: relative RMS error";
    }
  }
  EXPECT_GT(a.dispatches(), 0u);
  EXPECT_GT(b.dispatches(), 0u);
}

TEST(ExpertDispatcher, BadFramesGetAnErrorAndTheHostKeepsServing) {
  const auto& dir = test_model("tiny");
  HostThread h(dir, {0, 1, 2, 3});
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::rcvtimeo, 5000);
  s.connect(h.endpoint);
  auto expect_error = [&](const std::string& what) {
    auto reply = wire::receive(s);
    ASSERT_TRUE(reply) << what << ": no reply";
    EXPECT_EQ(reply->header.type, wire::MsgType::Error) << what;
  };
  // Garbage bytes.
  s.send(zmq::str_buffer("not a header"), zmq::send_flags::none);
  expect_error("garbage");
  // A valid header announcing a payload that does not come.
  wire::Header bad;
  bad.type = wire::MsgType::Dispatch;
  bad.payloads = 1;
  bad.payload_bytes[0] = 10;
  s.send(zmq::buffer(wire::encode_header(bad)), zmq::send_flags::none);
  expect_error("missing payload");
  // A dispatch naming an expert the host does not hold.
  wire::Message m;
  m.header.type = wire::MsgType::Dispatch;
  m.header.layer = 1;
  m.header.aux = 1;
  m.header.rank = 2;
  m.header.dtype = DType::F32;
  m.header.shape = {1, uint32_t(h.cfg.hidden_size), 0, 0};
  m.add_payload(std::vector<float>(h.cfg.hidden_size, 0.1f));
  m.add_payload(std::vector<int32_t>{9});
  m.add_payload(std::vector<float>{1.0f});
  wire::send(s, m);
  expect_error("expert not held");
  // Still serving: a proper request is answered.
  wire::Message hello;
  hello.header.type = wire::MsgType::Hello;
  hello.header.request_id = 77;
  wire::send(s, hello);
  auto reply = wire::receive(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->header.type, wire::MsgType::Hello);
  EXPECT_EQ(reply->header.request_id, 77u);
}

TEST(ExpertDispatcher, AMissingHostFailsTheRequestClearly) {
  const auto& dir = test_model("tiny");
  HostThread a(dir, {0, 1, 2, 3, 4, 5, 6, 7});
  zmq::context_t ctx;
  EngineOptions o;
  o.make_moe = [&](const ModelConfig& c, const Checkpoint& ck, const std::vector<int64_t>& layers) {
    // Experts 8-15 on a port nobody listens on: the work waits max_wait for it, then fails.
    DispatcherOptions d = dispatch_options(WireActivations::F32);
    d.max_wait = std::chrono::milliseconds(300);
    return std::make_unique<ExpertDispatcher>(
        ctx, c, ck, layers,
        std::vector<StaticExpertHost>{{"a", a.endpoint, "", a.experts()}, {"gone", "tcp://127.0.0.1:1", "", {8, 9, 10, 11, 12, 13, 14, 15}}},
        d);
  };
  Engine e(dir, o);
  try {
    e.step({{1, random_tokens(8, e.config().vocab_size, 1), false}});
    ADD_FAILURE() << "the step succeeded without experts 8-15";
  } catch (const ExpertsUnavailable& err) {
    EXPECT_NE(std::string(err.what()).find("no usable host"), std::string::npos) << err.what();
  }
  EXPECT_EQ(e.cache().used_pages(), 0) << "a failed step leaves no cache behind";
  EXPECT_THROW(ExpertDispatcher(ctx, e.config(), Checkpoint(dir), {1}, {{"a", a.endpoint, "", {0, 1}}}, dispatch_options(WireActivations::F32)),
               std::invalid_argument)
      << "experts without a host are refused at start";
}

// A host that answers every Dispatch with a Combine of the right shape but in
// bytes (U8), half the size a bf16 reading would take: refused, never read past.
TEST(ExpertDispatcher, ACombineInAnUnknownDtypeIsRefused) {
  const auto& dir = test_model("tiny");
  zmq::context_t ctx;
  zmq::socket_t host(ctx, zmq::socket_type::router);
  host.set(zmq::sockopt::linger, 0);
  host.set(zmq::sockopt::rcvtimeo, 100);
  host.bind("tcp://127.0.0.1:0");
  const std::string endpoint = host.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  std::thread fake([&] {
    while (!stop) {
      std::vector<zmq::message_t> routing;
      auto m = wire::receive(host, &routing);
      if (!m || m->header.type != wire::MsgType::Dispatch) continue;
      wire::Message r;
      r.header.type = wire::MsgType::Combine;
      r.header.request_id = m->header.request_id;
      r.header.dtype = DType::U8;
      r.header.rank = 2;
      r.header.shape = {m->header.shape[0], m->header.shape[1], 0, 0};
      r.add_payload(std::vector<uint8_t>(size_t(m->header.shape[0]) * m->header.shape[1], 0x7f));
      wire::send(host, r, &routing);
    }
  });
  zmq::context_t dctx;
  ExpertDispatcher* dispatcher = nullptr;
  EngineOptions o;
  o.make_moe = [&](const ModelConfig& c, const Checkpoint& ck, const std::vector<int64_t>& layers) {
    std::vector<int32_t> all(c.n_routed_experts);
    for (int32_t i = 0; i < c.n_routed_experts; ++i) all[i] = i;
    DispatcherOptions d = dispatch_options(WireActivations::F32);
    d.max_wait = std::chrono::milliseconds(500);
    auto disp = std::make_unique<ExpertDispatcher>(dctx, c, ck, layers, std::vector<StaticExpertHost>{{"liar", endpoint, "", all}}, d);
    dispatcher = disp.get();
    return disp;
  };
  Engine e(dir, o);
  EXPECT_THROW(e.step({{1, random_tokens(8, e.config().vocab_size, 1), false}}), ExpertsUnavailable)
      << "a U8 Combine was accepted";
  const DispatcherStats st = dispatcher->stats();
  EXPECT_GT(st.retries.at("error"), 0u) << "each bad answer counted and the work asked again";
  EXPECT_EQ(st.failed_calls, 1u);
  stop = true;
  fake.join();
}

// A router (here a fake one on a ROUTER socket) takes the only host out and
// then readmits it at the same address, as after a SIGSTOP and SIGCONT: the
// dispatcher closed its link while the host was out, and dials it again.
TEST(ExpertDispatcher, AHostReadmittedAtItsOldAddressIsDialledAgain) {
  const auto& dir = test_model("tiny");
  HostThread a(dir, [&] {
    std::vector<int32_t> all(static_cast<size_t>(ModelConfig::load(dir).n_routed_experts));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
    return all;
  }());
  zmq::context_t rctx;
  zmq::socket_t router(rctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:0");
  const std::string router_ep = router.get(zmq::sockopt::last_endpoint);
  std::mutex mu;
  PlacementTable current;  // what the fake router answers and pushes
  uint64_t pushed = 0;
  auto table = [&](uint64_t version, HostState state) {
    std::lock_guard<std::mutex> lock(mu);
    current.version = version;
    current.hosts = {TableHost{"a", a.endpoint, "", state, a.experts(), 0, false}};
  };
  table(1, HostState::Ready);
  std::atomic<bool> stop{false};
  std::thread fake([&] {
    std::vector<zmq::message_t> subscriber;
    while (!stop) {
      zmq::pollitem_t items[] = {{static_cast<void*>(router), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 1, std::chrono::milliseconds(20));
      std::lock_guard<std::mutex> lock(mu);
      if (items[0].revents & ZMQ_POLLIN) {
        std::vector<zmq::message_t> routing;
        auto m = wire::receive(router, &routing);
        if (m && m->header.type == wire::MsgType::Subscribe) {
          subscriber.clear();
          for (auto& f : routing) subscriber.emplace_back(f.data(), f.size());
          pushed = 0;  // answer with the table now
        }
      }
      if (!subscriber.empty() && pushed != current.version) {
        std::vector<zmq::message_t> to;
        for (auto& f : subscriber) to.emplace_back(f.data(), f.size());
        auto t = wire::json_message(wire::MsgType::Table, 0, to_json(current));
        wire::send(router, t, &to);
        pushed = current.version;
      }
    }
  });
  zmq::context_t dctx;
  EngineOptions o;
  o.make_moe = [&](const ModelConfig& c, const Checkpoint& ck, const std::vector<int64_t>& layers) {
    DispatcherOptions d = dispatch_options(WireActivations::F32);
    d.max_wait = std::chrono::milliseconds(1000);
    return std::make_unique<ExpertDispatcher>(dctx, c, ck, layers, router_ep, d);
  };
  Engine e(dir, o);
  const auto prompt = random_tokens(8, e.config().vocab_size, 3);
  auto step = [&] {
    e.step({{1, prompt, false}});
    e.release(1);
  };
  step();  // table 1: served by a
  table(2, HostState::Dead);
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    try {
      step();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } catch (const ExpertsUnavailable&) {
      refused = true;  // table 2 taken: nobody holds the experts
    }
  }
  ASSERT_TRUE(refused) << "the dispatcher never took the table without the host";
  const uint64_t served = a.dispatches();
  table(3, HostState::Ready);  // readmitted, same name and address
  // Until table 3 arrives the experts have no holder and the step fails at once;
  // after, a host listed but never dialled would make it wait out max_wait and fail.
  bool served_again = false;
  std::string last;
  for (const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
       !served_again && std::chrono::steady_clock::now() < until;) {
    try {
      step();
      served_again = true;
    } catch (const ExpertsUnavailable& err) {
      last = err.what();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  EXPECT_TRUE(served_again) << "the readmitted host was not dialled again: " << last;
  EXPECT_GT(a.dispatches(), served);
  stop = true;
  fake.join();
}
