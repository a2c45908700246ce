// A Hugging Face tokenizer.json of the byte-level BPE kind DeepSeek-V3 ships,
// with tokenizer_config.json's BOS/EOS handling. Encodes exactly as Hugging
// Face's tokenizers (and transformers, which adds BOS) do.
#pragma once

#include <array>
#include <cstdint>
#include <unordered_map>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/tokenizer_error.h"

namespace moemesh::tok {

class Bpe;
class PreTokenizer;

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;
  bool normalized;
};

class Tokenizer {
 public:
  // A directory with tokenizer.json (and optionally tokenizer_config.json), or
  // the path of a tokenizer.json. Throws TokenizerError naming what is wrong.
  static std::shared_ptr<const Tokenizer> load(const std::filesystem::path& dir_or_file);
  ~Tokenizer();

  // Throws TokenizerError on invalid UTF-8 (naming the byte offset).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Bytes the ids stand for, invalid UTF-8 replaced by U+FFFD. Throws on unknown ids.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // The raw bytes of one token (possibly part of a UTF-8 character).
  std::string token_bytes(int32_t id) const;

  std::optional<int32_t> token_id(std::string_view token) const;
  bool is_special(int32_t id) const;
  size_t vocab_size() const { return vocab_size_; }
  std::optional<int32_t> bos_id() const { return bos_; }
  std::optional<int32_t> eos_id() const { return eos_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  bool add_bos() const { return add_bos_; }
  // The Jinja chat template of tokenizer_config.json ("" when absent).
  const std::string& chat_template() const { return chat_template_; }

 private:
  Tokenizer() = default;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  std::unique_ptr<Bpe> bpe_;
  std::unique_ptr<PreTokenizer> pre_;
  std::vector<AddedToken> added_;
  std::vector<const AddedToken*> added_by_id_;
  // Leftmost-longest matching of added tokens over a byte trie.
  struct Trie {
    std::unordered_map<uint64_t, int32_t> edges;  // (node << 8 | byte) -> node
    std::vector<const AddedToken*> terminal{nullptr};
    std::array<bool, 256> first{};
    void insert(const AddedToken* t);
    // The longest token starting at s[i], or null.
    const AddedToken* longest_at(std::string_view s, size_t i) const;
  };
  static std::pair<size_t, const AddedToken*> find_added(std::string_view s, size_t from, const Trie& trie);
  // Appends the ids of `trie`'s tokens found in `text`; the text between them goes to gap(piece).
  template <class Gap>
  static void split_on_added(std::string_view text, const Trie& trie, std::vector<int32_t>& out, Gap&& gap);
  Trie raw_trie_, norm_trie_;
  size_t vocab_size_ = 0;
  std::optional<int32_t> bos_, eos_;
  std::string bos_token_, eos_token_, chat_template_;
  bool add_bos_ = false, add_eos_ = false;
};

}  // namespace moemesh::tok
