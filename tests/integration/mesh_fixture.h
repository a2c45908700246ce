// A whole mesh for an integration test: every role its own `moemesh serve`
// process on 127.0.0.1, over the tiny fp8 test model.
#pragma once

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "services/attention/attention_client.h"
#include "services/mesh/mesh_launcher.h"
#include "tests/support/test_models.h"

namespace moemesh::testing {

inline std::string moemesh_bin() {
  const char* b = std::getenv("MOEMESH_BIN");
  return b ? b : "moemesh";
}

// Polls `f` until it holds or `limit` passes.
template <class F>
bool eventually(F f, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// One expert host holding every expert.
inline const char* kOneHost = R"(expert_hosts=[{"name": "experts-0", "experts": "all"}])";

struct TestMesh {
  zmq::context_t ctx{1};
  std::unique_ptr<ProcessMesh> mesh;
  MeshEndpoints ep;

  TestMesh(const std::string& tag, const std::vector<std::string>& sets, const std::string& model = {}) {
    nlohmann::json j = load_cluster_json("", sets, "tcp");
    j["model"] = model.empty() ? test_model("tiny", true).string() : model;
    mesh = std::make_unique<ProcessMesh>(moemesh_bin(), j, temp_dir(tag), ctx);
    ep = mesh->start();
  }
  ~TestMesh() { mesh->stop(); }

  nlohmann::json router_stats() { return control_call(ctx, ep.router, {{"cmd", "stats"}}); }
  const nlohmann::json* host_entry(const nlohmann::json& stats, const std::string& name) {
    for (const auto& h : stats["hosts"])
      if (h["name"] == name) return &h;
    return nullptr;
  }
};

}  // namespace moemesh::testing
