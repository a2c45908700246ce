#include "core/tokenizer/bpe.h"

#include <queue>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/tokenizer/tokenizer_error.h"

namespace moemesh::tok {
namespace {
constexpr size_t kCacheMax = 1 << 17;
constexpr size_t kCacheWordMax = 64;

size_t cp_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4; }
}  // namespace

Bpe::Bpe(const nlohmann::json& model) {
  if (!model.is_object() || model.value("type", "") != "BPE") throw TokenizerError("tokenizer.json: model.type must be BPE");
  if (!model.contains("vocab") || !model["vocab"].is_object()) throw TokenizerError("tokenizer.json: model.vocab missing");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(k) && !model[k].is_null() && model[k] != "")
      throw TokenizerError(std::string("tokenizer.json: model.") + k + " is not supported");
  if (model.value("byte_fallback", false)) throw TokenizerError("tokenizer.json: model.byte_fallback is not supported");
  if (model.value("ignore_merges", false)) throw TokenizerError("tokenizer.json: model.ignore_merges is not supported");
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > (1 << 24))
      throw TokenizerError("tokenizer.json: vocab entry '" + it.key() + "' has a bad id");
    const int32_t id = it.value().get<int32_t>();
    vocab_[it.key()] = id;
    if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
    id_to_token_[id] = it.key();
    const unsigned char c0 = static_cast<unsigned char>(it.key()[0]);
    if (!it.key().empty() && cp_len(c0) == it.key().size()) {
      uint32_t cp = 0;
      for (unsigned char ch : it.key()) cp = (cp << 8) | ch;
      char_id_[cp] = id;
    }
  }
  if (!model.contains("merges") || !model["merges"].is_array()) throw TokenizerError("tokenizer.json: model.merges missing");
  int32_t rank = 0;
  for (const auto& m : model["merges"]) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) throw TokenizerError("tokenizer.json: merge '" + s + "' has no space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw TokenizerError("tokenizer.json: merge " + m.dump() + " is malformed");
    }
    const int32_t ia = token_id(a), ib = token_id(b), im = token_id(a + b);
    if (ia < 0 || ib < 0 || im < 0) throw TokenizerError("tokenizer.json: merge '" + a + " " + b + "' uses unknown tokens");
    merges_.emplace(key(ia, ib), Merge{rank++, im});
  }
}

int32_t Bpe::token_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

void Bpe::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  // Symbols in a linked list; a heap of candidate merges, validated when popped.
  struct Sym { int32_t id; int32_t prev, next; };
  std::vector<Sym> syms;
  for (size_t i = 0; i < word.size();) {
    const size_t n = cp_len(static_cast<unsigned char>(word[i]));
    uint32_t cp = 0;
    for (size_t k = 0; k < n && i + k < word.size(); ++k) cp = (cp << 8) | static_cast<unsigned char>(word[i + k]);
    auto it = char_id_.find(cp);
    if (it == char_id_.end()) throw TokenizerError("tokenizer: character not in the vocabulary");
    syms.push_back({it->second, static_cast<int32_t>(syms.size()) - 1, static_cast<int32_t>(syms.size()) + 1});
    i += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  struct Cand { int32_t rank, pos, left, right; };
  auto cmp = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  std::priority_queue<Cand, std::vector<Cand>, decltype(cmp)> heap(cmp);
  auto push = [&](int32_t pos) {
    const int32_t nx = syms[pos].next;
    if (nx < 0) return;
    auto it = merges_.find(key(syms[pos].id, syms[nx].id));
    if (it != merges_.end()) heap.push({it->second.rank, pos, syms[pos].id, syms[nx].id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.pos];
    if (l.id != c.left || l.next < 0 || syms[l.next].id != c.right) continue;  // stale
    const int32_t r = l.next;
    l.id = merges_.at(key(c.left, c.right)).id;
    l.next = syms[r].next;
    if (l.next >= 0) syms[l.next].prev = c.pos;
    syms[r].id = -1;
    if (l.prev >= 0) push(l.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

Bpe::Cache& Bpe::cache() const {
  thread_local const Bpe* owner = nullptr;
  thread_local Cache c;
  if (owner != this) {
    c.clear();
    owner = this;
  }
  return c;
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kCacheWordMax) {
    merge_word(word, out);
    return;
  }
  Cache& c = cache();
  auto it = c.find(word);
  if (it != c.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (c.size() >= kCacheMax) c.clear();
  c.emplace(std::string(word), std::move(ids));
}

}  // namespace moemesh::tok
