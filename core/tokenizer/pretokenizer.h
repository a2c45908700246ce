// The pre-tokenizer sequence of tokenizer.json: Split steps (regex, "Isolated")
// applied one after another, each to every piece of the previous step.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moemesh::tok {

class RegexSplit;

class PreTokenizer {
 public:
  // pre_tokenizer: the "pre_tokenizer" object of tokenizer.json. Supported: Split
  // with a Regex pattern and behavior Isolated, and ByteLevel without its own
  // regex (the byte mapping itself is applied by the caller).
  explicit PreTokenizer(const nlohmann::json& pre_tokenizer);
  ~PreTokenizer();

  // Calls fn(piece) for each piece of `text` (valid UTF-8), in order.
  template <class Fn>
  void split(std::string_view text, Fn&& fn) const {
    split_impl(text, 0, needs_aligned(text), fn);
  }

 private:
  template <class Fn>
  void split_impl(std::string_view text, size_t step, bool aligned, Fn& fn) const;
  // Whether `text` holds a character PCRE2's Unicode tables classify unlike
  // Hugging Face's (then the regexes aligned to those are used).
  static bool needs_aligned(std::string_view text);
  // Pieces of `text` by step `step`: matches and the gaps between them.
  void pieces(size_t step, bool aligned, std::string_view text, std::vector<std::string_view>& out) const;

  std::vector<std::unique_ptr<RegexSplit>> steps_;
};

template <class Fn>
void PreTokenizer::split_impl(std::string_view text, size_t step, bool aligned, Fn& fn) const {
  if (text.empty()) return;
  if (step == steps_.size()) {
    fn(text);
    return;
  }
  std::vector<std::string_view> parts;
  pieces(step, aligned, text, parts);
  for (std::string_view p : parts) split_impl(p, step + 1, aligned, fn);
}

}  // namespace moemesh::tok
