#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/tokenizer/pretokenizer.h"

#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "core/tokenizer/tokenizer_error.h"
#include "core/tokenizer/unicode_classes.h"

namespace moemesh::tok {
namespace {

// Brings a Split regex to the Unicode tables of Hugging Face's engine: \p{N},
// \p{L}, \p{M}, \p{P} and \p{S} also take the characters assigned after
// PCRE2's tables, and \s leaves out U+180E (White_Space no longer, but in
// PCRE2's \s). Both engines then split every string identically.
std::string align_unicode(const std::string& pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c != '\\') {
      if (c == '[' && !in_class) {
        in_class = true;
        out += c;
        // A ']' right after '[' or '[^' is literal.
        if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
        if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
        continue;
      }
      if (c == ']' && in_class) in_class = false;
      out += c;
      continue;
    }
    if (i + 1 >= pattern.size()) {
      out += c;
      break;
    }
    const char e = pattern[i + 1];
    const char* extra = nullptr;
    if (e == 'p' && i + 4 < pattern.size() && pattern[i + 2] == '{' && pattern[i + 4] == '}') {
      switch (pattern[i + 3]) {
        case 'N': extra = unicode_extra::kNumber; break;
        case 'L': case 'M': extra = unicode_extra::kLetterOrMark; break;
        case 'P': case 'S': extra = unicode_extra::kPunctuationOrSymbol; break;
        default: break;
      }
    }
    if (extra) {
      const std::string prop = pattern.substr(i, 5);
      out += in_class ? prop + extra : "[" + prop + extra + "]";
      i += 4;
    } else if (!in_class && e == 's') {
      out += "[^\\S\\x{180e}]";
      ++i;
    } else if (!in_class && e == 'S') {
      out += "[\\S\\x{180e}]";
      ++i;
    } else {
      out += c;
      out += e;
      ++i;
    }
  }
  return out;
}

// Code points whose class differs between PCRE2's tables and Hugging Face's
// engine; a text without any is split by the unaltered (faster) regex.
class DifferingChars {
 public:
  DifferingChars() : bits_((0x110000 + 63) / 64, 0) {
    set(0x180e);
    for (const char* list : {unicode_extra::kNumber, unicode_extra::kLetterOrMark, unicode_extra::kPunctuationOrSymbol}) {
      // The lists are "\x{A}" or "\x{A}-\x{B}" items.
      const std::string_view l(list);
      size_t i = 0;
      auto hex = [&] {
        i = l.find('{', i) + 1;
        const size_t end = l.find('}', i);
        const uint32_t v = static_cast<uint32_t>(std::stoul(std::string(l.substr(i, end - i)), nullptr, 16));
        i = end + 1;
        return v;
      };
      while (i < l.size() && l.find('{', i) != std::string_view::npos) {
        const uint32_t a = hex();
        uint32_t b = a;
        if (i < l.size() && l[i] == '-') b = hex();
        for (uint32_t c = a; c <= b; ++c) set(c);
      }
    }
  }
  // Whether valid UTF-8 `s` holds one (all of them are U+0800 or above).
  bool any_in(std::string_view s) const {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    for (size_t i = 0; i < n; ++i) {
      const unsigned char c = p[i];
      if (c < 0xe0) continue;
      uint32_t cp;
      if (c < 0xf0) {
        if (i + 2 >= n) break;
        cp = (static_cast<uint32_t>(c & 0x0f) << 12) | (static_cast<uint32_t>(p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
        i += 2;
      } else {
        if (i + 3 >= n) break;
        cp = (static_cast<uint32_t>(c & 0x07) << 18) | (static_cast<uint32_t>(p[i + 1] & 0x3f) << 12) |
             (static_cast<uint32_t>(p[i + 2] & 0x3f) << 6) | (p[i + 3] & 0x3f);
        i += 3;
      }
      if ((bits_[cp >> 6] >> (cp & 63)) & 1) return true;
    }
    return false;
  }

 private:
  void set(uint32_t cp) { bits_[cp >> 6] |= uint64_t{1} << (cp & 63); }
  std::vector<uint64_t> bits_;
};

const DifferingChars& differing_chars() {
  static const DifferingChars d;
  return d;
}

// One compiled regex (PCRE2 with JIT, UTF and Unicode properties).
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& source) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                          &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw TokenizerError("tokenizer.json: regex " + source + " does not compile: " + reinterpret_cast<char*>(msg));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code_); }

  // Matches and the gaps between them, in order.
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

}  // namespace

// One Split step: the regex as written, and the same aligned to Hugging Face's
// Unicode tables for texts that hold a character where the two differ.
class RegexSplit {
 public:
  explicit RegexSplit(const std::string& source) : plain_(source, source) {
    const std::string aligned = align_unicode(source);
    if (aligned != source) aligned_ = std::make_unique<Regex>(aligned, source);
  }
  void split(std::string_view s, bool aligned, std::vector<std::string_view>& out) const {
    (aligned && aligned_ ? *aligned_ : plain_).split(s, out);
  }

 private:
  Regex plain_;
  std::unique_ptr<Regex> aligned_;
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

bool PreTokenizer::needs_aligned(std::string_view text) { return differing_chars().any_in(text); }

void PreTokenizer::pieces(size_t step, bool aligned, std::string_view text, std::vector<std::string_view>& out) const {
  steps_[step]->split(text, aligned, out);
}

}  // namespace moemesh::tok
