// The mesh as containers (deploy/compose.yaml, one container per role) from the
// packaging image around this build's binary: the official `openai` npm client
// chats through the gateway, Prometheus scrapes every role, and the expert-host
// container doing the work, killed under load, fails no request and rejoins when
// it restarts (zones as in compose.one-zone.yaml).
// Needs a Docker engine (scripts/container_engine.sh makes one); without one the
// test skips, unless MOEMESH_REQUIRE_CONTAINERS=1 (CI), where that fails it.
// Everything it creates (containers, network, volumes, images) is removed at the end.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/delay_proxy.h"
#include "tests/support/shell.h"

namespace {
using namespace std::chrono_literals;
using moemesh::testing::capture;
using moemesh::testing::free_port;
using moemesh::testing::sh;
using Clock = std::chrono::steady_clock;

const std::string kSource = MOEMESH_SOURCE_DIR;

std::string docker_cli() {
  // Debian's docker.io client where it is installed: the same version as its daemon.
  return sh("test -x /usr/bin/docker") == 0 ? "/usr/bin/docker" : "docker";
}

std::string compose_cli(const std::string& docker) {
  if (sh("docker-compose version >/dev/null 2>&1") == 0) return "docker-compose";
  if (sh(docker + " compose version >/dev/null 2>&1") == 0) return docker + " compose";
  return "";
}

// One compose project with its own images and host ports; torn down on scope exit.
struct ComposeMesh {
  std::string docker = docker_cli(), compose_bin = compose_cli(docker);
  std::string project = "moemesh-ct-" + std::to_string(::getpid());
  std::string image = "moemesh:ct-" + std::to_string(::getpid());
  std::string prom_image = "moemesh-prometheus:ct-" + std::to_string(::getpid());
  int gateway_port = free_port(), prom_port = free_port();
  bool made_base = false;

  std::string gateway() const { return "http://127.0.0.1:" + std::to_string(gateway_port); }
  std::string prometheus() const { return "http://127.0.0.1:" + std::to_string(prom_port); }
  std::string compose(const std::string& args) const {
    return "MOEMESH_IMAGE=" + image + " MOEMESH_PROMETHEUS_IMAGE=" + prom_image +
           " MOEMESH_GATEWAY_PORT=" + std::to_string(gateway_port) + " MOEMESH_PROMETHEUS_PORT=" + std::to_string(prom_port) +
           " MOEMESH_API_KEYS='[\"sk-test\"]' " + compose_bin + " -p " + project + " -f " + kSource + "/deploy/compose.yaml -f " +
           kSource + "/tests/container/compose.one-zone.yaml " + args;
  }
  std::string container(const std::string& service) const { return capture(compose("ps -q " + service)); }

  ~ComposeMesh() {
    if (::testing::Test::HasFailure()) sh(compose("logs --no-color --tail 40") + " 2>&1 | tail -n 300");
    sh(compose("down --volumes --remove-orphans --timeout 10") + " >/dev/null 2>&1");
    sh(docker + " rmi -f " + image + " " + prom_image + " >/dev/null 2>&1");
    if (made_base) sh(docker + " rmi -f debian:bookworm >/dev/null 2>&1");
  }
};

// What an earlier run left when it was killed before its teardown (a ctest timeout):
// projects and images named moemesh-ct-PID / :ct-PID whose process is gone.
void remove_leftovers(const std::string& docker) {
  sh("for p in $(" + docker + " ps -a --format '{{.Label \"com.docker.compose.project\"}}' | grep '^moemesh-ct-' | sort -u); do "
     "kill -0 ${p#moemesh-ct-} 2>/dev/null && continue; " +
     docker + " ps -aq --filter label=com.docker.compose.project=$p | xargs -r " + docker + " rm -f >/dev/null; " +
     docker + " volume ls -q | grep \"^${p}_\" | xargs -r " + docker + " volume rm >/dev/null; " +
     docker + " network ls -q --filter name=${p}_ | xargs -r " + docker + " network rm >/dev/null; done; "
     "for i in $(" + docker + " images --format '{{.Repository}}:{{.Tag}}' | grep -E '^moemesh(-prometheus)?:ct-[0-9]+$'); do "
     "kill -0 ${i##*:ct-} 2>/dev/null || " + docker + " rmi -f $i >/dev/null; done");
}

// A Prometheus instant query's first value, or -1.
double prom_value(const ComposeMesh& m, const std::string& query) {
  const std::string body = capture("curl -sf --max-time 5 " + m.prometheus() + "/api/v1/query --data-urlencode 'query=" + query + "'");
  try {
    const auto j = nlohmann::json::parse(body);
    const auto& r = j.at("data").at("result");
    if (r.empty()) return -1;
    return std::stod(r[0].at("value")[1].get<std::string>());
  } catch (const std::exception&) {
    return -1;
  }
}

template <class F>
bool wait_for(std::chrono::seconds limit, F&& ok) {
  for (const auto until = Clock::now() + limit; Clock::now() < until; std::this_thread::sleep_for(1s))
    if (ok()) return true;
  return false;
}
}  // namespace

TEST(ComposeMesh, ChatsScrapesAndSurvivesAnExpertHostContainerKilledUnderLoad) {
  const bool required = std::getenv("MOEMESH_REQUIRE_CONTAINERS") && std::string(std::getenv("MOEMESH_REQUIRE_CONTAINERS")) == "1";
  ComposeMesh m;
  if (sh(m.docker + " info >/dev/null 2>&1") != 0 || m.compose_bin.empty()) {
    if (required) FAIL() << "no Docker engine or compose (scripts/container_engine.sh)";
    GTEST_SKIP() << "no Docker engine or compose here (scripts/container_engine.sh starts one)";
  }
  ASSERT_EQ(sh("node --version >/dev/null 2>&1 && test -d " + kSource + "/node_modules/openai"), 0) << "node and the openai package";
  remove_leftovers(m.docker);
  const char* bin = std::getenv("MOEMESH_BIN");
  ASSERT_TRUE(bin) << "MOEMESH_BIN (ctest sets it)";

  // The packaging image around this build's binary (and the base, made here if missing).
  m.made_base = sh(m.docker + " image inspect debian:bookworm >/dev/null 2>&1") != 0;
  ASSERT_EQ(sh(kSource + "/scripts/images.sh --package --binary " + bin + " --tag " + m.image + " --prometheus-tag " +
               m.prom_image),
            0);

  ASSERT_EQ(sh(m.compose("up -d") + " 2>&1 | tail -n 20"), 0);
  ASSERT_TRUE(wait_for(300s, [&] { return sh("curl -sf --max-time 3 " + m.gateway() + "/readyz >/dev/null") == 0; }))
      << "the gateway never became ready";

  // Prometheus scrapes every role: six targets, all up; the router counts both hosts ready.
  EXPECT_TRUE(wait_for(90s, [&] { return prom_value(m, "count(up == 1)") == 6; }))
      << "targets up: " << prom_value(m, "count(up == 1)") << " of " << prom_value(m, "count(up)");
  EXPECT_TRUE(wait_for(60s, [&] { return prom_value(m, "sum(moemesh_expert_host_up{job=\"moemesh-router\"})") == 2; }));
  const auto cross_zone = [&] { return prom_value(m, "sum(moemesh_cross_zone_dispatches_total)"); };
  double cross_before = cross_zone();
  for (int i = 0; i < 10; ++i) {  // settled over a scrape interval (the first dispatches may precede expert-host-0's join)
    std::this_thread::sleep_for(6s);
    const double now = cross_zone();
    if (now == cross_before) break;
    cross_before = now;
  }

  // The official client: chat (whole and streamed), completions, the prefix cache, errors.
  EXPECT_EQ(sh("cd " + kSource + " && timeout 180 node tests/e2e/openai_client.mjs " + m.gateway() + " sk-test"), 0);
  // Every dispatch of it stayed in zone a, on one host (its exact comparisons rely on that).
  std::this_thread::sleep_for(6s);
  EXPECT_EQ(cross_zone(), cross_before);
  const double changes_before = prom_value(m, "max(moemesh_membership_changes_total)");

  // Streaming clients (SSE and WebSocket) for 25 s; the expert host doing the work
  // (the one in the dispatchers' zone) dies 6 s in, as a crash does: SIGKILL of its
  // process from outside; the other zone's replica takes over, and the restart policy brings it back.
  const std::string load_out = ::testing::TempDir() + "compose-load-" + std::to_string(::getpid()) + ".json";
  std::thread load([&] {
    sh("cd " + kSource + " && timeout 120 node tests/e2e/load_clients.mjs " + m.gateway() + " sk-test 8 25 mixed 16 > " + load_out);
  });
  std::this_thread::sleep_for(6s);
  const std::string victim = m.container("expert-host-0");
  const std::string pid = capture(m.docker + " inspect -f '{{.State.Pid}}' " + victim);
  const bool killed_from_outside = !pid.empty() && pid != "0" && sh("kill -9 " + pid + " 2>/dev/null") == 0;
  if (!killed_from_outside) {  // not allowed to signal it (not root): the engine kills it, and it is started again
    EXPECT_EQ(sh(m.docker + " kill --signal KILL " + victim + " >/dev/null"), 0);
    std::this_thread::sleep_for(2s);
    EXPECT_EQ(sh(m.docker + " start " + victim + " >/dev/null"), 0);
  }
  load.join();

  std::ifstream in(load_out);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(load_out.c_str());
  nlohmann::json stats;
  ASSERT_NO_THROW(stats = nlohmann::json::parse(ss.str())) << ss.str();
  std::cout << "load across the kill: " << stats.dump() << "\n";
  EXPECT_GT(stats.value("requests", 0), 8);
  EXPECT_EQ(stats.value("errors", -1), 0) << stats.value("first_error", nlohmann::json()).dump();
  // With expert-host-0 gone, the work crossed to zone b.
  EXPECT_TRUE(wait_for(30s, [&] { return cross_zone() > cross_before; }));

  // The restarted container rejoins: the router counts it ready again, after taking it out and back in.
  if (killed_from_outside) {
    EXPECT_GE(std::stoi(capture(m.docker + " inspect -f '{{.RestartCount}}' " + victim)), 1);
  }
  EXPECT_TRUE(wait_for(120s, [&] {
    return prom_value(m, "sum(moemesh_expert_host_up{job=\"moemesh-router\"})") == 2 &&
           prom_value(m, "max(moemesh_membership_changes_total)") >= changes_before + 2;
  })) << "up " << prom_value(m, "sum(moemesh_expert_host_up{job=\"moemesh-router\"})") << ", membership changes "
      << changes_before << " -> " << prom_value(m, "max(moemesh_membership_changes_total)");
  EXPECT_EQ(sh("curl -sf --max-time 60 -H 'authorization: Bearer sk-test' -H 'content-type: application/json' " + m.gateway() +
               "/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}],\"max_tokens\":8}' >/dev/null"),
            0);
}
