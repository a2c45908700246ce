#include "tool_call_parser.h"

#include "held_text.h"

#include <algorithm>
#include <random>

namespace moemesh {

namespace {
constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>",
                           kCallBegin = "<｜tool▁call▁begin｜>", kCallEnd = "<｜tool▁call▁end｜>", kSep = "<｜tool▁sep｜>";
constexpr std::string_view kFunction = "function";
constexpr size_t kMaxName = 64;

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }
bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
// `s` is shorter than `p` and begins it: more text could complete it.
bool begins(std::string_view s, std::string_view p) { return s.size() < p.size() && p.substr(0, s.size()) == s; }

std::string call_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlnum[rng() % 62];
  return id;
}
}  // namespace

ToolCallParser::ToolCallParser(ToolFormat f, std::vector<std::string> names) : format_(f), names_(std::move(names)) {}

ToolCallParser::Out ToolCallParser::push(std::string_view text) {
  Out out;
  buf_ += text;
  run(out, false);
  return out;
}

ToolCallParser::Out ToolCallParser::finish() {
  Out out;
  run(out, true);
  return out;
}

void ToolCallParser::malformed() {
  // Not a call after all: the markers read since the last call are dropped
  // (markup never reaches content); the text after them (still in buf_) is
  // read again as text.
  marked_ = false;
  state_ = State::Text;
}

void ToolCallParser::open_call(Out& out, std::string name) {
  calls_.push_back({call_id(), std::move(name), ""});
  out.calls.push_back({calls_.size() - 1, calls_.back().id, calls_.back().name, ""});
  marked_ = false;
  args_.clear();
  emitted_ = 0;
  state_ = State::Args;
}

void ToolCallParser::emit_args(Out& out, bool all) {
  // A trailing run of space (and, in V3's format, of fence backticks) may
  // still be the fence that closes the arguments: held until the call ends.
  size_t safe = args_.size();
  if (!all)
    while (safe > emitted_ && (is_space(args_[safe - 1]) || (format_ == ToolFormat::DeepSeekV3 && args_[safe - 1] == '`'))) --safe;
  if (safe <= emitted_) return;
  const std::string piece = args_.substr(emitted_, safe - emitted_);
  emitted_ = safe;
  calls_.back().arguments += piece;
  if (!out.calls.empty() && out.calls.back().index == calls_.size() - 1) out.calls.back().arguments += piece;
  else out.calls.push_back({calls_.size() - 1, "", "", piece});
}

// function<｜tool▁sep｜>NAME\n then, optionally, ```json\n.
bool ToolCallParser::header_v3(Out& out, bool end) {
  std::string_view b = buf_;
  const size_t head = kFunction.size() + kSep.size();
  if (b.size() < head) {
    if (begins(b, std::string(kFunction) + std::string(kSep)) && !end) return false;
    malformed();
    return true;
  }
  if (!starts(b, kFunction) || !starts(b.substr(kFunction.size()), kSep)) {
    malformed();
    return true;
  }
  size_t i = head;
  while (i < b.size() && name_char(b[i]) && i - head <= kMaxName) ++i;
  if (i == b.size() && !end && i - head <= kMaxName) return false;
  if (i == b.size() || b[i] != '\n' || i == head || i - head > kMaxName) {
    malformed();
    return true;
  }
  std::string name(b.substr(head, i - head));
  const std::string_view after = b.substr(i + 1);
  // The fence that opens the arguments: ``` and a language tag ("json", or
  // none) up to the end of its line; wait while it may still be coming.
  size_t fence = 0;
  if (begins(after, "```") && !end) return false;
  if (starts(after, "```")) {
    size_t k = 3;
    while (k < after.size() && k < 24 && std::isalpha(static_cast<unsigned char>(after[k]))) ++k;
    while (k < after.size() && k < 32 && (after[k] == ' ' || after[k] == '\t' || after[k] == '\r')) ++k;
    if (k == after.size() && !end && k < 32) return false;
    if (k < after.size() && after[k] == '\n') fence = k + 1;
  }
  if (!names_.empty() && std::find(names_.begin(), names_.end(), name) == names_.end()) {
    malformed();
    return true;
  }
  const size_t used = i + 1 + fence;
  buf_.erase(0, used);
  open_call(out, std::move(name));
  return true;
}

// NAME<｜tool▁sep｜>
bool ToolCallParser::header_v31(Out& out, bool end) {
  std::string_view b = buf_;
  size_t i = 0;
  while (i < b.size() && name_char(b[i]) && i <= kMaxName) ++i;
  const std::string_view rest = b.substr(i);
  if ((rest.empty() || begins(rest, kSep)) && !end && i <= kMaxName) return false;
  std::string name(b.substr(0, i));
  if (!starts(rest, kSep) || i == 0 || i > kMaxName ||
      (!names_.empty() && std::find(names_.begin(), names_.end(), name) == names_.end())) {
    malformed();
    return true;
  }
  buf_.erase(0, i + kSep.size());
  open_call(out, std::move(name));
  return true;
}

void ToolCallParser::run(Out& out, bool end) {
  for (;;) {
    switch (state_) {
      case State::Text: {
        const size_t a = buf_.find(kCallsBegin), b = buf_.find(kCallBegin);
        const size_t at = std::min(a, b);
        // A stray end or separator marker before any begin: dropped, never content.
        size_t stray = std::string::npos, stray_len = 0;
        for (const auto m : {kCallsEnd, kCallEnd, kSep}) {
          const size_t x = buf_.find(m);
          if (x < stray) stray = x, stray_len = m.size();
        }
        if (stray < at) {
          out.content += buf_.substr(0, stray);
          buf_.erase(0, stray + stray_len);
          continue;
        }
        if (at != std::string::npos) {
          out.content += buf_.substr(0, at);
          buf_.erase(0, at == a ? at + kCallsBegin.size() : at);  // a lone call marker is read by Calls
          marked_ = at == a;
          state_ = State::Calls;
          continue;
        }
        size_t keep = 0;
        if (!end)
          for (const auto m : {kCallsBegin, kCallBegin, kCallsEnd, kCallEnd, kSep}) keep = std::max(keep, partial_tail(buf_, m));
        out.content += buf_.substr(0, buf_.size() - keep);
        buf_.erase(0, buf_.size() - keep);
        return;
      }
      case State::Calls: {
        size_t i = 0;
        while (i < buf_.size() && is_space(buf_[i])) ++i;
        const std::string_view rest = std::string_view(buf_).substr(i);
        if (starts(rest, kCallBegin)) {
          marked_ = true;
          buf_.erase(0, i + kCallBegin.size());
          state_ = State::Header;
          continue;
        }
        if (starts(rest, kCallsEnd)) {
          buf_.erase(0, i + kCallsEnd.size());
          marked_ = false;  // a block with no call in it: nothing to show
          state_ = State::Text;
          continue;
        }
        if ((rest.empty() || begins(rest, kCallBegin) || begins(rest, kCallsEnd)) && !end) return;
        // Text where a call should begin: the block is over.
        if (marked_) malformed();
        else buf_.erase(0, i);
        state_ = State::Text;
        if (end && buf_.empty()) return;
        continue;
      }
      case State::Header:
        if (!(format_ == ToolFormat::DeepSeekV3 ? header_v3(out, end) : header_v31(out, end))) return;
        continue;
      case State::Args: {
        // The arguments end at the call's end marker, or where the next call or
        // the block's end begins (a model that forgot the marker).
        if (args_.empty()) {
          size_t i = 0;
          while (i < buf_.size() && is_space(buf_[i])) ++i;
          buf_.erase(0, i);
        }
        // Any other marker ends them too: markup is never arguments.
        size_t at = std::string::npos, keep = 0;
        for (const auto m : {kCallEnd, kCallBegin, kCallsEnd, kCallsBegin, kSep}) {
          at = std::min(at, buf_.find(m));
          keep = std::max(keep, partial_tail(buf_, m));
        }
        auto trimmed = [&] {
          // The arguments without the closing fence and the space around it.
          size_t n = args_.size();
          while (n > emitted_ && (is_space(args_[n - 1]) || (format_ == ToolFormat::DeepSeekV3 && args_[n - 1] == '`'))) --n;
          args_.resize(n);
          emit_args(out, true);
        };
        if (at != std::string::npos) {
          args_ += buf_.substr(0, at);
          buf_.erase(0, starts(std::string_view(buf_).substr(at), kCallEnd) ? at + kCallEnd.size() : at);
          trimmed();
          state_ = State::Calls;
          continue;
        }
        args_ += buf_.substr(0, buf_.size() - keep);
        buf_.erase(0, buf_.size() - keep);
        emit_args(out, false);
        if (end) {
          // Cut off (max_tokens): the arguments so far, less a marker begun and a trailing fence.
          buf_.clear();
          trimmed();
        }
        return;
      }
    }
  }
}

}  // namespace moemesh
