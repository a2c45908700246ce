#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/tokenizer/pretokenizer.h"

#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "core/tokenizer/tokenizer_error.h"

namespace moemesh::tok {

// One compiled Split regex (PCRE2 with JIT, UTF and Unicode properties).
class RegexSplit {
 public:
  explicit RegexSplit(const std::string& pattern) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                          &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw TokenizerError("tokenizer.json: regex " + pattern + " does not compile: " + reinterpret_cast<char*>(msg));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~RegexSplit() { pcre2_code_free(code_); }

  void split(std::string_view s, std::vector<std::string_view>& out) const {
    thread_local struct Data {
      pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
      ~Data() { pcre2_match_data_free(md); }
    } data;
    size_t pos = 0, last = 0;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    while (pos <= s.size()) {
      const int rc = jit_ ? pcre2_jit_match(code_, subject, s.size(), pos, 0, data.md, nullptr)
                          : pcre2_match(code_, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, data.md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.md);
      size_t b = ov[0], e = ov[1];
      if (e == b) {  // an empty match: step over one character
        if (b >= s.size()) break;
        pos = b + 1;
        while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xc0) == 0x80) ++pos;
        continue;
      }
      if (b > last) out.push_back(s.substr(last, b - last));
      out.push_back(s.substr(b, e - b));
      last = pos = e;
    }
    if (last < s.size()) out.push_back(s.substr(last));
  }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

PreTokenizer::PreTokenizer(const nlohmann::json& pt) {
  std::vector<nlohmann::json> list;
  if (pt.is_null()) return;
  if (pt.value("type", "") == "Sequence") {
    if (!pt.contains("pretokenizers") || !pt["pretokenizers"].is_array())
      throw TokenizerError("tokenizer.json: pre_tokenizer Sequence without pretokenizers");
    for (const auto& p : pt["pretokenizers"]) list.push_back(p);
  } else {
    list.push_back(pt);
  }
  for (const auto& p : list) {
    const std::string type = p.value("type", "");
    if (type == "Split") {
      if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
        throw TokenizerError("tokenizer.json: only Split with behavior Isolated is supported");
      if (!p.contains("pattern") || !p["pattern"].contains("Regex") || !p["pattern"]["Regex"].is_string())
        throw TokenizerError("tokenizer.json: Split needs a Regex pattern");
      steps_.push_back(std::make_unique<RegexSplit>(p["pattern"]["Regex"].get<std::string>()));
    } else if (type == "ByteLevel") {
      if (p.value("use_regex", true) || p.value("add_prefix_space", false))
        throw TokenizerError("tokenizer.json: ByteLevel pre-tokenizer with its own regex or prefix space is not supported");
    } else {
      throw TokenizerError("tokenizer.json: pre-tokenizer '" + type + "' is not supported");
    }
  }
}

PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::pieces(size_t step, std::string_view text, std::vector<std::string_view>& out) const {
  steps_[step]->split(text, out);
}

}  // namespace moemesh::tok
