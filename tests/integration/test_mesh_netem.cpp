// The whole mesh over a slow, lossy network: `tc netem` on the loopback device
// of a new network namespace (delay with jitter, and packet loss), every role in
// its own process inside it. Needs user namespaces and the kernel's sch_netem;
// skipped, with the reason, where the machine has neither.
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/integration/mesh_fixture.h"
#include "tests/support/test_models.h"

using namespace moemesh;
using namespace moemesh::testing;

namespace {
const char* kNetem = "ip link set lo up && tc qdisc add dev lo root netem delay 5ms 2ms loss 1%";

// Runs `script` with sh inside a new user and network namespace; returns its exit status.
int in_netns(const std::filesystem::path& dir, const std::string& script, std::string* err) {
  std::ofstream(dir / "run.sh") << "set -e\n" << script << "\n";
  const int st = std::system(("unshare -rn sh " + (dir / "run.sh").string() + " 2> " + (dir / "err.txt").string()).c_str());
  std::stringstream e;
  e << std::ifstream(dir / "err.txt").rdbuf();
  *err = e.str();
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
}  // namespace

TEST(MeshNetem, EvalOverASlowLossyLinkEqualsOneProcess) {
  const auto dir = temp_dir("mesh-netem");
  std::string err;
  if (in_netns(dir, kNetem, &err) != 0) GTEST_SKIP() << "tc netem in a network namespace is not available here: " << err;

  const auto& model = test_model("tiny", true);
  const auto toks = random_tokens(30, 1024, 21);
  std::ofstream(dir / "in.json") << nlohmann::json{{"sequences", {toks}}, {"greedy", {{"prompt", {0, 5, 9}}, {"max_new_tokens", 8}}}}.dump();
  const std::string io = " --model " + model.string() + " --input " + (dir / "in.json").string() + " --out ";
  ASSERT_EQ(std::system((moemesh_bin() + " eval" + io + (dir / "local.json").string() + " 2>/dev/null").c_str()), 0);
  std::ofstream(dir / "hosts.json") << nlohmann::json{{"expert_hosts", {{{"name", "experts-0"}, {"experts", "all"}}}}}.dump();
  ASSERT_EQ(in_netns(dir,
                     std::string(kNetem) + "\n" + moemesh_bin() + " eval --mesh --config " + (dir / "hosts.json").string() + io +
                         (dir / "mesh.json").string(),
                     &err),
            0)
      << err;
  const auto local = nlohmann::json::parse(std::ifstream(dir / "local.json"));
  const auto mesh = nlohmann::json::parse(std::ifstream(dir / "mesh.json"));
  // f32 on every hop and one host: what one process computes, however slow the link.
  EXPECT_EQ(mesh["sequences"], local["sequences"]);
  EXPECT_EQ(mesh["greedy"], local["greedy"]);
}
