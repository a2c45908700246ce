#include "core/tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/tokenizer/bpe.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/pretokenizer.h"
#include "core/tokenizer/utf8.h"

namespace moemesh::tok {
namespace {

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) throw TokenizerError("cannot open " + p.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(p.string() + ": invalid JSON: " + e.what());
  }
}

// "bos_token" may be a string or an AddedToken object.
std::string token_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer::~Tokenizer() = default;

void Tokenizer::Trie::insert(const AddedToken* t) {
  int32_t node = 0;
  for (unsigned char c : t->content) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | c;
    auto it = edges.find(key);
    if (it == edges.end()) {
      it = edges.emplace(key, static_cast<int32_t>(terminal.size())).first;
      terminal.push_back(nullptr);
    }
    node = it->second;
  }
  if (!terminal[node]) terminal[node] = t;  // the first of duplicate contents wins
  first[static_cast<unsigned char>(t->content[0])] = true;
}

const AddedToken* Tokenizer::Trie::longest_at(std::string_view s, size_t i) const {
  const AddedToken* best = nullptr;
  int32_t node = 0;
  for (; i < s.size(); ++i) {
    auto it = edges.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(s[i]));
    if (it == edges.end()) break;
    node = it->second;
    if (terminal[node]) best = terminal[node];
  }
  return best;
}

std::pair<size_t, const AddedToken*> Tokenizer::find_added(std::string_view s, size_t from, const Trie& trie) {
  for (size_t i = from; i < s.size(); ++i) {
    if (!trie.first[static_cast<unsigned char>(s[i])]) continue;
    if (const AddedToken* t = trie.longest_at(s, i)) return {i, t};
  }
  return {std::string_view::npos, nullptr};
}

std::shared_ptr<const Tokenizer> Tokenizer::load(const std::filesystem::path& p) {
  const auto file = std::filesystem::is_directory(p) ? p / "tokenizer.json" : p;
  const nlohmann::json j = read_json(file);
  if (!j.is_object()) throw TokenizerError(file.string() + ": not a JSON object");
  std::shared_ptr<Tokenizer> t(new Tokenizer());
  try {
    const auto& norm = j.value("normalizer", nlohmann::json());
    if (!norm.is_null() && !(norm.value("type", "") == "Sequence" && norm.value("normalizers", nlohmann::json::array()).empty()))
      throw TokenizerError("tokenizer.json: normalizers are not supported");
    const auto& dec = j.value("decoder", nlohmann::json());
    if (!dec.is_null() && dec.value("type", "") != "ByteLevel")
      throw TokenizerError("tokenizer.json: only the ByteLevel decoder is supported");
    t->bpe_ = std::make_unique<Bpe>(j.at("model"));
    t->pre_ = std::make_unique<PreTokenizer>(j.value("pre_tokenizer", nlohmann::json()));
    t->vocab_size_ = t->bpe_->vocab_size();
    for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content"))
        throw TokenizerError("tokenizer.json: malformed added token " + a.dump());
      if (a.value("lstrip", false) || a.value("rstrip", false) || a.value("single_word", false))
        throw TokenizerError("tokenizer.json: added token '" + a["content"].get<std::string>() +
                             "' uses lstrip/rstrip/single_word, which is not supported");
      AddedToken at{a["id"].get<int32_t>(), a["content"].get<std::string>(), a.value("special", false),
                    a.value("normalized", !a.value("special", false))};
      if (at.id < 0 || at.content.empty()) throw TokenizerError("tokenizer.json: bad added token " + a.dump());
      t->added_.push_back(std::move(at));
    }
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(file.string() + ": " + e.what());
  }
  for (const auto& a : t->added_) t->vocab_size_ = std::max(t->vocab_size_, static_cast<size_t>(a.id) + 1);
  t->added_by_id_.assign(t->vocab_size_, nullptr);
  for (const auto& a : t->added_) {
    t->added_by_id_[a.id] = &a;
    (a.normalized ? t->norm_trie_ : t->raw_trie_).insert(&a);
  }

  const auto cfg_path = file.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    const nlohmann::json c = read_json(cfg_path);
    t->bos_token_ = token_text(c.value("bos_token", nlohmann::json()));
    t->eos_token_ = token_text(c.value("eos_token", nlohmann::json()));
    t->add_bos_ = c.value("add_bos_token", false);
    t->add_eos_ = c.value("add_eos_token", false);
    if (c.contains("chat_template") && c["chat_template"].is_string()) t->chat_template_ = c["chat_template"].get<std::string>();
    if (!t->bos_token_.empty()) t->bos_ = t->token_id(t->bos_token_);
    if (!t->eos_token_.empty()) t->eos_ = t->token_id(t->eos_token_);
    if (t->add_bos_ && !t->bos_) throw TokenizerError(cfg_path.string() + ": bos_token is not in the vocabulary");
  }
  return t;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  for (const auto& a : added_)
    if (a.content == token) return a.id;
  const int32_t id = bpe_->token_id(token);
  if (id >= 0) return id;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < added_by_id_.size() && added_by_id_[id] && added_by_id_[id]->special;
}

void Tokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  const auto& map = byte_to_unicode();
  thread_local std::string mapped;
  pre_->split(text, [&](std::string_view piece) {
    mapped.clear();
    for (unsigned char b : piece) mapped += map[b];
    bpe_->encode_word(mapped, out);
  });
}

template <class Gap>
void Tokenizer::split_on_added(std::string_view text, const Trie& trie, std::vector<int32_t>& out, Gap&& gap) {
  size_t pos = 0;
  while (pos < text.size()) {
    auto [at, tok] = find_added(text, pos, trie);
    if (!tok) {
      gap(text.substr(pos));
      return;
    }
    gap(text.substr(pos, at - pos));
    out.push_back(tok->id);
    pos = at + tok->content.size();
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (auto bad = utf8_invalid_at(text)) throw TokenizerError("invalid UTF-8 at byte " + std::to_string(*bad));
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special_tokens && add_bos_) out.push_back(*bos_);
  // Tokens matched on the raw text first, then those matched after normalization.
  split_on_added(text, raw_trie_, out, [&](std::string_view rest) {
    split_on_added(rest, norm_trie_, out, [&](std::string_view plain) { encode_plain(plain, out); });
  });
  if (add_special_tokens && add_eos_ && eos_) out.push_back(*eos_);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_size_) throw TokenizerError("token id " + std::to_string(id) + " is outside the vocabulary");
  if (added_by_id_[id]) return token_to_bytes(added_by_id_[id]->content);
  if (static_cast<size_t>(id) >= bpe_->vocab_size() || bpe_->token(id).empty())
    throw TokenizerError("token id " + std::to_string(id) + " has no token");
  return token_to_bytes(bpe_->token(id));
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    bytes += token_bytes(id);
  }
  return utf8_lossy(bytes);
}

}  // namespace moemesh::tok
