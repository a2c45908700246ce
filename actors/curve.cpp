#include "actors/curve.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fstream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

namespace moemesh::curve {

namespace {

std::mutex g_mu;
std::shared_ptr<const Keyring> g_keyring;
std::atomic<uint64_t> g_refused{0}, g_admitted{0};

bool z85_key(const std::string& k) {
  if (k.size() != 40) return false;
  uint8_t out[32];
  return zmq_z85_decode(out, k.c_str()) != nullptr;
}

// One ZAP handler per ZeroMQ context: ZeroMQ asks it over inproc://zeromq.zap.01
// whether a client may connect (RFC 27).
struct Zap {
  std::atomic<bool> alive{true};
};
std::map<const void*, std::shared_ptr<Zap>> g_zaps;

void zap_loop(std::shared_ptr<Zap> zap, std::shared_ptr<zmq::socket_t> rep) {
  // Without a handler libzmq admits every key: this thread must not end while
  // its context lives. Signals go to other threads; an interrupted call is retried.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  try {
    for (;;) {
      std::vector<zmq::message_t> req;
      for (;;) {
        zmq::message_t m;
        try {
          if (!rep->recv(m)) continue;
        } catch (const zmq::error_t& e) {
          if (e.num() == EINTR) continue;
          throw;
        }
        const bool more = m.more();
        req.push_back(std::move(m));
        if (!more) break;
      }
      // version, request id, domain, address, identity, mechanism, credentials...
      std::string status = "400", text = "not allowed", user;
      if (req.size() >= 7 && req[0].to_string() == "1.0") {
        const std::string domain = req[2].to_string(), mechanism = req[5].to_string();
        auto k = keyring();
        if (k && mechanism == "CURVE" && req[6].size() == 32) {
          char z85[41];
          zmq_z85_encode(z85, static_cast<const uint8_t*>(req[6].data()), 32);
          const auto who = k->who(z85);
          if (who && Keyring::allowed(domain, who->substr(0, who->find('/')))) {
            status = "200";
            text = "OK";
            user = *who;
          } else {
            text = who ? "a " + who->substr(0, who->find('/')) + " may not call a " + domain : "unknown key";
            spdlog::warn("security: refused a connection to the {} from {} ({})", domain, req[3].to_string(), text);
          }
        }
      }
      (status == "200" ? g_admitted : g_refused)++;
      const std::string version = "1.0";
      auto send = [&](zmq::const_buffer b, zmq::send_flags f) {
        for (;;) {
          try {
            rep->send(b, f);
            return;
          } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
          }
        }
      };
      send(zmq::buffer(version), zmq::send_flags::sndmore);
      send(req.size() > 1 ? zmq::const_buffer(req[1].data(), req[1].size()) : zmq::const_buffer(), zmq::send_flags::sndmore);
      send(zmq::buffer(status), zmq::send_flags::sndmore);
      send(zmq::buffer(text), zmq::send_flags::sndmore);
      send(zmq::buffer(user), zmq::send_flags::sndmore);
      send(zmq::const_buffer(), zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    if (e.num() != ETERM) {
      spdlog::critical("security: the ZAP handler failed ({}); stopping rather than admitting every key", e.what());
      std::abort();
    }
  } catch (const std::exception& e) {
    spdlog::critical("security: the ZAP handler failed ({}); stopping rather than admitting every key", e.what());
    std::abort();
  }
  zap->alive = false;
  rep->close();
}

void start_zap(zmq::context_t& ctx) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto& z = g_zaps[static_cast<void*>(ctx.handle())];
  if (z && z->alive) return;
  z = std::make_shared<Zap>();
  auto rep = std::make_shared<zmq::socket_t>(ctx, zmq::socket_type::rep);
  rep->set(zmq::sockopt::linger, 0);
  rep->bind("inproc://zeromq.zap.01");
  std::thread(zap_loop, z, rep).detach();
}

}  // namespace

KeyPair generate() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("this libzmq has no CURVE (built without libsodium)");
  return {pub, sec};
}

const std::vector<std::string>& kinds() {
  static const std::vector<std::string> k = {"router", "attention", "mtp-draft", "gateway", "expert-host", "admin"};
  return k;
}

bool Keyring::allowed(std::string_view server, std::string_view client) {
  if (server == "router")
    return client == "expert-host" || client == "attention" || client == "mtp-draft" || client == "gateway" || client == "admin";
  if (server == "expert-host") return client == "attention" || client == "mtp-draft" || client == "router";
  if (server == "attention") return client == "gateway";
  if (server == "mtp-draft") return client == "attention";
  return false;
}

std::shared_ptr<const Keyring> Keyring::load(const std::filesystem::path& dir,
                                             const std::vector<std::pair<std::string, std::string>>& identities) {
  auto k = std::make_shared<Keyring>();
  if (identities.empty()) throw std::runtime_error("security: a keyring needs this process's identity");
  if (!std::filesystem::is_directory(dir)) throw std::runtime_error("security: the keyring " + dir.string() + " is not a folder");
  for (const auto& kd : kinds()) {
    const auto sub = dir / kd;
    if (!std::filesystem::is_directory(sub)) continue;
    for (const auto& f : std::filesystem::directory_iterator(sub)) {
      if (f.path().extension() != ".pub") continue;
      std::ifstream in(f.path());
      std::string pub;
      std::getline(in, pub);
      if (!z85_key(pub)) throw std::runtime_error("security: " + f.path().string() + " does not hold a Z85 CURVE public key");
      const std::string id = kd + "/" + f.path().stem().string();
      k->by_key_[pub] = id;
      k->by_id_[id] = pub;
    }
  }
  for (const auto& [kind, name] : identities) {
    const auto own = dir / kind / (name + ".key");
    std::ifstream in(own);
    if (!in) throw std::runtime_error("security: no key " + own.string() + " for this " + kind + " (moemesh keygen makes one)");
    Identity id{kind, name, {}};
    std::getline(in, id.keys.public_key);
    std::getline(in, id.keys.secret_key);
    if (!z85_key(id.keys.public_key) || !z85_key(id.keys.secret_key))
      throw std::runtime_error("security: " + own.string() + " does not hold a public and a secret key (Z85, a line each)");
    k->own_.push_back(std::move(id));
  }
  return k;
}

const Identity* Keyring::client_of(std::string_view kind) const {
  for (const auto& id : own_)
    if (allowed(kind, id.kind)) return &id;
  return nullptr;
}

void Keyring::write(const std::filesystem::path& dir, const std::string& kind, const std::string& name, const KeyPair& k) {
  std::filesystem::create_directories(dir / kind);
  ::chmod(dir.c_str(), 0700);
  const auto key = dir / kind / (name + ".key"), pub = dir / kind / (name + ".pub");
  // Created 0600: the secret is never readable by others, not even for a moment.
  const int fd = ::open(key.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0) throw std::runtime_error("security: cannot write " + key.string());
  const std::string text = k.public_key + "\n" + k.secret_key + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fchmod(fd, 0600) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("security: cannot write " + key.string());
  std::ofstream(pub) << k.public_key << "\n";
}

std::optional<std::string> Keyring::public_key(std::string_view kind, std::string_view name) const {
  if (!name.empty()) {
    auto it = by_id_.find(std::string(kind) + "/" + std::string(name));
    if (it == by_id_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> only;
  const std::string prefix = std::string(kind) + "/";
  for (const auto& [id, pub] : by_id_)
    if (id.rfind(prefix, 0) == 0) {
      if (only) return std::nullopt;  // several: a name is needed
      only = pub;
    }
  return only;
}

std::optional<std::string> Keyring::who(std::string_view public_key) const {
  auto it = by_key_.find(std::string(public_key));
  if (it == by_key_.end()) return std::nullopt;
  return it->second;
}

void enable(std::shared_ptr<const Keyring> k) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_keyring = std::move(k);
}

std::shared_ptr<const Keyring> keyring() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_keyring;
}

bool applies(std::string_view endpoint) { return keyring() && endpoint.rfind("inproc://", 0) != 0; }

void serve(zmq::context_t& ctx, zmq::socket_t& s, std::string_view endpoint) {
  if (!applies(endpoint)) return;
  const auto k = keyring();
  start_zap(ctx);
  s.set(zmq::sockopt::curve_server, true);
  s.set(zmq::sockopt::curve_secretkey, k->server().keys.secret_key);
  s.set(zmq::sockopt::zap_domain, k->server().kind);
}

void dial(zmq::socket_t& s, std::string_view endpoint, std::string_view kind, std::string_view name) {
  if (!applies(endpoint)) return;
  const auto k = keyring();
  const auto server = k->public_key(kind, name);
  if (!server)
    throw std::runtime_error("security: the keyring has no key for the " + std::string(kind) + (name.empty() ? "" : " " + std::string(name)) +
                             " at " + std::string(endpoint));
  const Identity* me = k->client_of(kind);
  if (!me) throw std::runtime_error("security: this " + k->server().kind + " holds no key that may call a " + std::string(kind));
  s.set(zmq::sockopt::curve_serverkey, *server);
  s.set(zmq::sockopt::curve_publickey, me->keys.public_key);
  s.set(zmq::sockopt::curve_secretkey, me->keys.secret_key);
}

uint64_t refused() { return g_refused; }
uint64_t admitted() { return g_admitted; }

std::string peer_of(zmq::message_t& m) {
  if (!keyring()) return {};
  try {
    const char* u = m.gets("User-Id");
    return u ? u : "";
  } catch (const zmq::error_t&) {
    return {};  // not a message of a ZAP-checked connection
  }
}

}  // namespace moemesh::curve
