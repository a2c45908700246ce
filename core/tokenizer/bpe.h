// Byte-pair encoding by merge rank, as Hugging Face's BPE model applies it:
// the lowest-ranked adjacent pair merges first, leftmost on ties.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moemesh::tok {

class Bpe {
 public:
  // model: the "model" object of tokenizer.json (type BPE).
  explicit Bpe(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized, byte-level-mapped word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_id(std::string_view token) const;  // -1 if absent
  const std::string& token(int32_t id) const { return id_to_token_[id]; }
  size_t vocab_size() const { return id_to_token_.size(); }

 private:
  struct Merge { int32_t rank; int32_t id; };
  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::unordered_map<uint32_t, int32_t> char_id_;  // single characters

  // Per-thread word cache (no locking on the hot path), keyed by this instance.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Cache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;
  Cache& cache() const;
};

}  // namespace moemesh::tok
