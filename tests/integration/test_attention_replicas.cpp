// Attention replicas behind one gateway (docs/MESH.md, "Attention replicas"):
// every role its own process, the gateway in this process finding the
// replicas through the router, clients over HTTP. Routing spreads and keeps
// conversations where their cache is; a replica that dies, hangs or joins
// loses no stream and delivers nothing twice.
#include <signal.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <regex>
#include <set>

#include "core/tokenizer/tokenizer.h"
#include "model/engine.h"
#include "model/scheduler.h"
#include "services/gateway/api.h"
#include "tests/integration/mesh_fixture.h"
#include "tests/support/http_get.h"
#include "tests/support/http_stream.h"
#include "tests/support/shell.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {

// The machine's own stalls, on top of a deadline (as in the failover tests).
constexpr double kNoiseMs = 700;

struct Replicas {
  TestMesh mesh;
  GatewayOptions opts;
  std::unique_ptr<GatewayService> gateway;
  std::string url;

  Replicas(const std::string& tag, std::vector<std::string> sets, const std::string& routing)
      : mesh(tag, with(sets, {"attention.replicas=2"}), trained_model(true).string()) {
    opts.port = 0;
    opts.routing = routing;
    opts.stall_floor_ms = 800;
    gateway = std::make_unique<GatewayService>(opts, trained_model(true).string(), GatewayUpstream{{}, mesh.ep.router}, mesh.ctx);
    url = "http://127.0.0.1:" + std::to_string(gateway->start());
    // Both replicas known to the gateway before any load.
    EXPECT_TRUE(eventually([&] { return metric("moemesh_attention_replicas", "state=\"ready\"") >= 2; }));
  }
  ~Replicas() {
    gateway->stop();
    gateway.reset();
  }
  static std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  // The gateway's metric `name` on the series whose labels contain `labels`, summed.
  double metric(const std::string& name, const std::string& labels = "") {
    const std::string text = http_get(url + "/metrics");
    double sum = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(name + "{", 0) != 0 || line.find(labels) == std::string::npos) continue;
      sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  }
  double requests_of(const std::string& replica) { return metric("moemesh_replica_requests_total", "replica=\"" + replica + "\""); }
};

struct Answer {
  std::string text, finish, error;
  int status = 0;
  double max_gap_ms = 0;
};

// One streamed completion, greedy.
Answer complete(const std::string& url, const std::string& prompt, int64_t max_tokens, std::atomic<int>* pieces = nullptr) {
  Answer a;
  const nlohmann::json body{{"model", "m"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", true}};
  auto last = std::chrono::steady_clock::time_point{};
  try {
    const PostResult r = http_post_stream(url + "/v1/completions", body.dump(), [&](const std::string& data) {
      if (data == "[DONE]") return;
      const auto j = nlohmann::json::parse(data, nullptr, false);
      if (j.is_discarded() || !j.contains("choices") || j["choices"].empty()) {
        if (j.is_object() && j.contains("error")) a.error = j["error"].dump();
        return;
      }
      const auto& c = j["choices"][0];
      const std::string piece = c.value("text", std::string());
      a.text += piece;
      if (c.contains("finish_reason") && c["finish_reason"].is_string()) a.finish = c["finish_reason"];
      const auto now = std::chrono::steady_clock::now();
      if (!piece.empty()) {
        if (last != std::chrono::steady_clock::time_point{})
          a.max_gap_ms = std::max(a.max_gap_ms, std::chrono::duration<double, std::milli>(now - last).count());
        last = now;
        if (pieces) ++*pieces;
      }
    });
    a.status = r.status;
    if (r.status != 200) a.error = r.body;
  } catch (const std::exception& e) {
    a.error = e.what();
  }
  return a;
}

// What one process gives for the same completions (greedy, exact products,
// the gateway's tokenization: a BOS, then the text; the end-of-sequence id stops).
std::vector<std::string> one_process(const std::vector<std::string>& prompts, int64_t max_tokens) {
  const auto dir = trained_model(true);
  auto tk = tok::Tokenizer::load(dir);
  EngineOptions eo;
  eo.compute = cpu::Precision::Exact;
  Engine engine(dir, eo);
  Scheduler s(engine);
  const int32_t eos = static_cast<int32_t>(engine.config().eos_token_id);
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r;
    r.id = i + 1;
    r.prompt = tk->encode(prompts[i], true);
    r.max_new_tokens = max_tokens;
    r.stop_ids = {eos};
    s.submit(r);
  }
  std::vector<std::vector<int32_t>> tokens(prompts.size());
  while (!s.idle())
    for (const auto& e : s.step())
      if (e.token >= 0 && e.token != eos) tokens[e.id - 1].push_back(e.token);
  std::vector<std::string> texts;
  for (const auto& t : tokens) texts.push_back(tk->decode(t, /*skip_special_tokens=*/true));  // as the gateway shows text
  return texts;
}

std::vector<std::string> prompts(size_t n, const std::string& tag) {
  static const char* openings[] = {"And the LORD spake unto Moses", "In the beginning God created", "Blessed are the meek",
                                   "And it came to pass", "The LORD is my shepherd", "Now the serpent was more subtil",
                                   "And Jacob went out from Beersheba", "Hear, O Israel"};
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(std::string(openings[i % 8]) + ", " + tag + " " + std::to_string(i) + ",");
  return out;
}

// `n` streamed completions at once, each on its own thread.
struct Load {
  std::vector<Answer> answers;
  std::vector<std::thread> threads;
  std::atomic<int> pieces{0};
  Load(const std::string& url, const std::vector<std::string>& ps, int64_t max_tokens) : answers(ps.size()) {
    for (size_t i = 0; i < ps.size(); ++i)
      threads.emplace_back([&, i, max_tokens] { answers[i] = complete(url, ps[i], max_tokens, &pieces); });
  }
  void join() {
    for (auto& t : threads) t.join();
    threads.clear();
  }
  ~Load() { join(); }
  // Every answer whole and equal to one process's; returns the longest gap of any stream.
  double expect_equal(const std::vector<std::string>& want) {
    join();
    double worst = 0;
    for (size_t i = 0; i < answers.size(); ++i) {
      EXPECT_EQ(answers[i].status, 200) << i << ": " << answers[i].error;
      EXPECT_EQ(answers[i].error, "") << i;
      EXPECT_TRUE(answers[i].finish == "length" || answers[i].finish == "stop") << i << ": " << answers[i].finish;
      EXPECT_EQ(answers[i].text, want[i]) << "stream " << i << " differs from one process";
      worst = std::max(worst, answers[i].max_gap_ms);
    }
    return worst;
  }
};

const std::vector<std::string> kExact = {"compute=exact", "dispatch.activations=f32", "attention.speculative=0"};

}  // namespace

TEST(AttentionReplicas, LeastLoadSpreadsSixteenClientsOverBothReplicas) {
  Replicas r("replicas-spread", {"attention.speculative=0"}, "least_load");
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c)
    clients.emplace_back([&, c] {
      for (int k = 0; !stop; ++k) {
        const Answer a = complete(r.url, prompts(1, "client " + std::to_string(c) + " turn " + std::to_string(k))[0], 12);
        ++(a.error.empty() && a.status == 200 ? done : failed);
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(20));
  stop = true;
  for (auto& t : clients) t.join();
  const double a = r.requests_of("attention-0"), b = r.requests_of("attention-1");
  std::printf("[ replicas ] least_load, 16 clients, 20 s: %d requests, attention-0 %.0f, attention-1 %.0f\n", done.load(), a, b);
  EXPECT_EQ(failed, 0);
  EXPECT_GT(done, 32);
  EXPECT_GE(a, (a + b) / 3) << "attention-0 served too few";
  EXPECT_GE(b, (a + b) / 3) << "attention-1 served too few";
}

TEST(AttentionReplicas, CacheAwareSendsEachConversationBackToItsReplica) {
  Replicas r("replicas-cache", {"attention.speculative=0"}, "cache_aware");
  // Eight conversations of three turns, each turn's prompt the whole
  // conversation so far: long enough that its pages are cached.
  constexpr int kConversations = 8, kTurns = 3;
  std::vector<std::string> convo = prompts(kConversations, "a long opening to make pages of, a long opening to make pages of,");
  for (auto& c : convo)
    for (int k = 0; k < 6; ++k) c += " and he said unto them, Go ye into the city, and there shall meet you a man,";
  for (int turn = 0; turn < kTurns; ++turn) {
    Load load(r.url, convo, 16);
    load.join();
    for (int i = 0; i < kConversations; ++i) {
      ASSERT_EQ(load.answers[i].error, "") << i;
      convo[i] += load.answers[i].text + " And then,";
    }
  }
  const double cached = r.metric("moemesh_routing_decisions_total", "choice=\"cached\"");
  std::printf("[ replicas ] cache_aware: %.0f of %d follow-up turns sent to the replica holding their prefix\n", cached,
              kConversations * (kTurns - 1));
  EXPECT_GE(cached, kConversations * (kTurns - 1)) << "a follow-up turn went to a replica without its conversation";
  // And the replicas' own prefix caches confirm it: follow-ups hit.
  double hits = 0;
  for (const auto& ep : r.mesh.ep.attention_replicas) hits += AttentionClient(r.mesh.ctx, ep).stats()["prefix_cache"].value("hit_tokens", 0.0);
  EXPECT_GT(hits, 64.0 * kConversations * (kTurns - 1)) << "follow-up turns should find at least a page of their conversation";
  EXPECT_GE(r.requests_of("attention-0"), 1);
  EXPECT_GE(r.requests_of("attention-1"), 1);
}

TEST(AttentionReplicas, AKilledReplicaLosesNoStreamAndResumedTextEqualsOneProcess) {
  Replicas r("replicas-kill", kExact, "least_load");
  const auto ps = prompts(12, "kill");
  const auto want = one_process(ps, 48);
  Load load(r.url, ps, 48);
  ASSERT_TRUE(eventually([&] { return load.pieces.load() > 60; }));
  r.mesh.mesh->attention(0).signal(SIGKILL);
  const double gap = load.expect_equal(want);
  const double resumed = r.metric("moemesh_resumed_streams_total", "reason=\"disconnect\"");
  std::printf("[ replicas ] SIGKILL of a replica: %.0f streams resumed, longest gap %.0f ms\n", resumed, gap);
  EXPECT_GT(resumed, 0) << "streams of the killed replica resume on the other";
  EXPECT_EQ(r.metric("moemesh_resumed_streams_total", "reason=\"stall\""), 0) << "the dropped connection moved them, not a deadline";
}

TEST(AttentionReplicas, AStoppedReplicasStreamsResumeWithinTheDeadlineAndNothingComesTwice) {
  Replicas r("replicas-stop", kExact, "least_load");
  const auto ps = prompts(12, "stop");
  const auto want = one_process(ps, 48);
  StallWatch machine;
  Load load(r.url, ps, 48);
  ASSERT_TRUE(eventually([&] { return load.pieces.load() > 60; }));
  r.mesh.mesh->attention(0).signal(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  r.mesh.mesh->attention(0).signal(SIGCONT);
  // Equal texts: nothing of the stale streams was delivered after SIGCONT.
  const double gap = load.expect_equal(want);
  const double resumed = r.metric("moemesh_resumed_streams_total", "reason=\"stall\"");
  std::printf("[ replicas ] SIGSTOP of a replica for 3 s: %.0f streams resumed, longest gap %.0f ms\n", resumed, gap);
  EXPECT_GT(resumed, 0);
  EXPECT_LE(gap, r.opts.stall_floor_ms + 250 + kNoiseMs + machine.worst_ms()) << "the machine itself stalled " << machine.worst_ms() << " ms";
  // The woken replica answers again and serves new requests.
  ASSERT_TRUE(eventually([&] { return r.metric("moemesh_attention_replicas", "state=\"ready\"") >= 2; }));
}

TEST(AttentionReplicas, AReplicaStartedUnderLoadTakesRequests) {
  Replicas r("replicas-join", {"attention.speculative=0"}, "least_load");
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      for (int k = 0; !stop; ++k)
        if (!complete(r.url, prompts(1, "join " + std::to_string(c) + " " + std::to_string(k))[0], 8).error.empty()) ++failed;
    });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  r.mesh.mesh->add_attention("attention-2");
  const bool took = eventually([&] { return r.requests_of("attention-2") >= 3; }, std::chrono::seconds(60));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_TRUE(took) << "the new replica got " << r.requests_of("attention-2") << " requests";
  EXPECT_EQ(failed, 0);
}

TEST(AttentionReplicas, SixtySecondsOfChaosFailNoRequest) {
  // bench-chaos for a minute (docs/RELIABILITY.md has the five-minute run): 32
  // streaming clients, SSE and WebSocket, while a replica, an mtp-draft, an expert
  // host and the router are killed and brought back and a replica is stopped.
  const auto out = capture(moemesh_bin() + " bench-chaos --model " + trained_model(true).string() +
                           " --seconds 60 --clients 32 --fault-min 6 --fault-max 10 --seed 4 --json 2>/dev/null");
  const auto j = nlohmann::json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  std::printf("[ chaos    ] %s\n", j.dump().c_str());
  EXPECT_EQ(j["failed"], 0) << j["errors"].dump();
  EXPECT_GT(j["sse"].get<int>(), 100);
  EXPECT_GT(j["websocket"].get<int>(), 100);
  std::set<std::string> hit;
  for (const auto& f : j["faults"]) {
    hit.insert(f["role"].get<std::string>().substr(0, 6));
    EXPECT_FALSE(f.contains("restart_failed")) << f.dump();
  }
  EXPECT_EQ(hit, (std::set<std::string>{"attent", "expert", "mtp-dr", "router"})) << j["faults"].dump();
}

TEST(AttentionReplicas, ASigtermedReplicaFinishesItsStreamsAndTakesNoNewOnes) {
  Replicas r("replicas-drain", kExact, "least_load");
  const auto ps = prompts(8, "drain");
  const auto want = one_process(ps, 48);
  Load load(r.url, ps, 48);
  ASSERT_TRUE(eventually([&] { return load.pieces.load() > 30; }));
  const double before = r.requests_of("attention-0");
  r.mesh.mesh->attention(0).signal(SIGTERM);
  load.expect_equal(want);
  // Drained: its streams finished there (none moved for a stall or a drop) and it exits.
  EXPECT_EQ(r.metric("moemesh_resumed_streams_total", "reason=\"stall\""), 0);
  EXPECT_TRUE(eventually([&] { return !r.mesh.mesh->attention(0).running(); }));
  for (const auto& p : prompts(4, "after")) EXPECT_EQ(complete(r.url, p, 8).error, "");
  EXPECT_EQ(r.requests_of("attention-0"), before) << "nothing new went to the draining replica";
}
