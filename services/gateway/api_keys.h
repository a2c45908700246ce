// The API keys the gateway accepts, kept only as SHA-256 digests and compared
// in constant time: the process holds no key in clear after start (a config
// may list digests alone), and how long a check takes says nothing about how
// much of a key was right.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moemesh {

class ApiKeys {
 public:
  // `keys` in clear, `digests` as "sha256:" and 64 hex digits (printf %s KEY | sha256sum).
  // Throws std::invalid_argument on a malformed digest.
  ApiKeys(const std::vector<std::string>& keys, const std::vector<std::string>& digests);

  bool empty() const { return digests_.empty(); }
  // The key's label when it is one of them ("key-" and the first 8 hex digits
  // of its digest: for per-key limits and logs, never the key), else nullopt.
  std::optional<std::string> match(std::string_view presented) const;

  static std::string digest_hex(std::string_view key);

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

}  // namespace moemesh
