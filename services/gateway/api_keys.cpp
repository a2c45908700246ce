#include "api_keys.h"

#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace moemesh {

namespace {

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr) != 1 || n != d.size())
    throw std::runtime_error("SHA-256 failed");
  return d;
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

}  // namespace

ApiKeys::ApiKeys(const std::vector<std::string>& keys, const std::vector<std::string>& digests) {
  for (const auto& k : keys) {
    if (k.empty()) throw std::invalid_argument("gateway.api_keys: an empty key would let anyone in");
    digests_.push_back(sha256(k));
  }
  for (const auto& d : digests) {
    const std::string_view prefix = "sha256:";
    std::string_view h = d;
    if (h.substr(0, prefix.size()) == prefix) h.remove_prefix(prefix.size());
    if (h.size() != 64) throw std::invalid_argument("gateway.api_key_digests: '" + d + "' is not sha256: and 64 hex digits");
    std::array<unsigned char, 32> out{};
    for (size_t i = 0; i < 64; ++i) {
      const char c = h[i];
      const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) throw std::invalid_argument("gateway.api_key_digests: '" + d + "' is not sha256: and 64 hex digits");
      out[i / 2] = static_cast<unsigned char>(out[i / 2] | (i % 2 ? v : v << 4));
    }
    digests_.push_back(out);
  }
}

std::optional<std::string> ApiKeys::match(std::string_view presented) const {
  const auto d = sha256(presented);
  // Every digest is compared, each in constant time: no early exit to time.
  int found = -1;
  for (size_t i = 0; i < digests_.size(); ++i)
    if (CRYPTO_memcmp(d.data(), digests_[i].data(), d.size()) == 0) found = static_cast<int>(i);
  if (found < 0) return std::nullopt;
  return "key-" + hex(digests_[static_cast<size_t>(found)].data(), 4);
}

std::string ApiKeys::digest_hex(std::string_view key) {
  const auto d = sha256(key);
  return hex(d.data(), d.size());
}

}  // namespace moemesh
