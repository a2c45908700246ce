// ZeroMQ CURVE between roles (docs/SECURITY.md): every tcp:// and ipc://
// connection of the mesh is authenticated and encrypted once a process has a
// keyring. A keyring is a folder of key files by role kind,
//
//   DIR/router/router.key  DIR/attention/attention.key  DIR/mtp-draft/mtp-draft.key
//   DIR/gateway/gateway.key  DIR/expert-host/<host name>.key  DIR/admin/admin.key
//   (public then secret key, Z85), and a .pub beside each (the public key alone)
//
// of which a process reads every .pub and its own .key (a process that is
// several clients, as `moemesh up` is gateway and admin, several: each call
// goes out under the first of them allowed to make it). Its server sockets
// admit, through the ZAP handler of their ZeroMQ context, only clients whose
// public key is in the folder under a kind allowed to call them:
//
//   router      <- expert-host, attention, mtp-draft, admin   (membership, tables, commands)
//   expert-host <- attention, mtp-draft, router          (dispatches, commands)
//   attention   <- gateway                               (generations)
//   mtp-draft   <- attention                             (drafts)
//
// and tag each admitted connection with "kind/name" (the message metadata
// User-Id), which the router checks a host's Hello against. inproc:// (one
// process) stays as it is.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

namespace moemesh::curve {

struct KeyPair {
  std::string public_key, secret_key;  // Z85, 40 characters each
};
KeyPair generate();

// The role kinds that hold keys.
const std::vector<std::string>& kinds();

struct Identity {
  std::string kind, name;
  KeyPair keys;
};

class Keyring {
 public:
  // Every public key under `dir`, and the key pairs of this process's
  // identities (kind, name), the first the one its server socket uses.
  // Throws std::runtime_error naming the file at fault.
  static std::shared_ptr<const Keyring> load(const std::filesystem::path& dir,
                                             const std::vector<std::pair<std::string, std::string>>& identities);
  // Writes DIR/kind/name.key (mode 0600) and .pub; throws std::runtime_error.
  static void write(const std::filesystem::path& dir, const std::string& kind, const std::string& name, const KeyPair& k);

  // This process as a server, and as a client of a server of `kind` (null: none of its identities may call it).
  const Identity& server() const { return own_.front(); }
  const Identity* client_of(std::string_view kind) const;
  // The public key of kind/name (name empty: the one key of that kind).
  std::optional<std::string> public_key(std::string_view kind, std::string_view name = "") const;
  // "kind/name" of a public key, if it is in the keyring.
  std::optional<std::string> who(std::string_view public_key) const;
  // May a client of `client_kind` call a server of `server_kind`?
  static bool allowed(std::string_view server_kind, std::string_view client_kind);

 private:
  std::vector<Identity> own_;
  std::map<std::string, std::string> by_key_;  // public key -> "kind/name"
  std::map<std::string, std::string> by_id_;   // "kind/name" -> public key
};

// The keyring of this process: set once at start (CURVE on), null otherwise.
void enable(std::shared_ptr<const Keyring> k);
std::shared_ptr<const Keyring> keyring();
// CURVE applies to `endpoint` (on, and not inproc://).
bool applies(std::string_view endpoint);

// Before bind: `s` becomes a CURVE server with this process's key, admitting
// clients through the ZAP handler of `ctx` (started on first use).
void serve(zmq::context_t& ctx, zmq::socket_t& s, std::string_view endpoint);
// Before connect: `s` becomes a CURVE client of the server kind/name. Throws
// std::runtime_error when the keyring has no key for it.
void dial(zmq::socket_t& s, std::string_view endpoint, std::string_view kind, std::string_view name = "");

// Connections the ZAP handlers of this process refused, and admitted.
uint64_t refused();
uint64_t admitted();

// The "kind/name" ZAP gave the connection a message came on ("" without CURVE).
std::string peer_of(zmq::message_t& m);

// The kind of a "kind/name" peer ("" for no peer: no CURVE).
inline std::string_view peer_kind(std::string_view peer) {
  const size_t slash = peer.find('/');
  return slash == std::string_view::npos ? std::string_view() : peer.substr(0, slash);
}

}  // namespace moemesh::curve
