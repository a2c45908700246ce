#include "model/draft_vocab.h"

#include <algorithm>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

namespace moemesh {

DraftVocab count_draft_vocab(const std::vector<int32_t>& tokens, int64_t vocab, int64_t size,
                             const std::vector<int32_t>& always, std::string source) {
  if (size < 1 || size > vocab) throw std::invalid_argument("a draft vocabulary holds 1 to " + std::to_string(vocab) + " tokens");
  std::vector<int64_t> count(static_cast<size_t>(vocab), 0);
  for (int32_t t : tokens) {
    if (t < 0 || t >= vocab) throw std::invalid_argument("token id " + std::to_string(t) + " outside the vocabulary");
    ++count[static_cast<size_t>(t)];
  }
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return count[a] > count[b]; });
  DraftVocab v;
  v.source = std::move(source);
  std::vector<bool> in(static_cast<size_t>(vocab), false);
  auto add = [&](int32_t t) {
    if (in[static_cast<size_t>(t)] || static_cast<int64_t>(v.ids.size()) >= size) return;
    in[static_cast<size_t>(t)] = true;
    v.ids.push_back(t);
  };
  for (int32_t t : always) {
    if (t < 0 || t >= vocab) throw std::invalid_argument("token id " + std::to_string(t) + " outside the vocabulary");
    add(t);
  }
  for (int32_t t : order)
    if (count[static_cast<size_t>(t)] > 0) add(t);
  return v;
}

std::optional<DraftVocab> load_draft_vocab(const std::filesystem::path& dir, int64_t vocab) {
  const auto file = dir / kDraftVocabFile;
  if (!std::filesystem::exists(file)) return std::nullopt;
  auto bad = [&](const std::string& why) { return CheckpointError(file.string() + ": " + why); };
  std::ifstream in(file);
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw bad("not a JSON object");
  if (!j.contains("ids") || !j["ids"].is_array() || j["ids"].empty()) throw bad("\"ids\" must be a non-empty array of token ids");
  if (j.contains("vocab_size") && (!j["vocab_size"].is_number_integer() || j["vocab_size"].get<int64_t>() != vocab))
    throw bad("made for a vocabulary of " + j["vocab_size"].dump() + " tokens; this model has " + std::to_string(vocab));
  DraftVocab v;
  if (j.contains("source") && !j["source"].is_string()) throw bad("\"source\" must be a string");
  v.source = j.value("source", std::string("unnamed"));
  std::vector<bool> seen(static_cast<size_t>(vocab), false);
  for (const auto& e : j["ids"]) {
    if (!e.is_number_integer()) throw bad("ids must be integers, not " + e.dump());
    const int64_t t = e.get<int64_t>();
    if (t < 0 || t >= vocab) throw bad("token id " + std::to_string(t) + " outside [0, " + std::to_string(vocab) + ")");
    if (seen[static_cast<size_t>(t)]) throw bad("token id " + std::to_string(t) + " listed twice");
    seen[static_cast<size_t>(t)] = true;
    v.ids.push_back(static_cast<int32_t>(t));
  }
  if (j.contains("size") && (!j["size"].is_number_integer() || j["size"].get<int64_t>() != static_cast<int64_t>(v.ids.size())))
    throw bad("\"size\" says " + j["size"].dump() + " but " + std::to_string(v.ids.size()) + " ids are listed");
  return v;
}

void save_draft_vocab(const std::filesystem::path& file, const DraftVocab& v, int64_t vocab) {
  std::ofstream o(file);
  o << nlohmann::json{{"vocab_size", vocab}, {"size", v.ids.size()}, {"source", v.source}, {"ids", v.ids}}.dump() << "\n";
  if (!o) throw std::runtime_error("cannot write " + file.string());
}

}  // namespace moemesh
