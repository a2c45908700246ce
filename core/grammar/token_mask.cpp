#include "core/grammar/token_mask.h"

#include <algorithm>
#include <numeric>

namespace moemesh::grammar {

TokenBytes::TokenBytes(std::vector<std::string> bytes) : bytes_(std::move(bytes)) {
  for (size_t i = 0; i < bytes_.size(); ++i)
    if (!bytes_[i].empty()) sorted_.push_back(static_cast<int32_t>(i));
  std::sort(sorted_.begin(), sorted_.end(), [&](int32_t a, int32_t b) { return bytes_[a] < bytes_[b]; });
  lcp_.assign(sorted_.size(), 0);
  for (size_t i = 1; i < sorted_.size(); ++i) {
    const std::string &a = bytes_[sorted_[i - 1]], &b = bytes_[sorted_[i]];
    uint32_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    lcp_[i] = n;
  }
}

TokenMasks::TokenMasks(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenBytes> vocab)
    : g_(std::move(g)), vocab_(std::move(vocab)) {}

size_t TokenMasks::positions_computed() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

TokenMasks::PositionMask TokenMasks::compute(const Stack& top) const {
  const TokenBytes& v = *vocab_;
  PositionMask m;
  m.accepted.assign((v.size() + 63) / 64, 0);
  // levels[d]: the stacks after the first d bytes of the current token, walked
  // from this position alone; bottom[d]: some parse ran past the rule by then.
  std::vector<std::vector<Stack>> levels{{top}};
  std::vector<char> bottom{0};
  size_t valid = 1;  // levels[0..valid) hold the previous token's prefixes
  for (size_t i = 0; i < v.sorted_.size(); ++i) {
    const int32_t id = v.sorted_[i];
    const std::string& t = v.bytes_[static_cast<size_t>(id)];
    size_t d = std::min<size_t>(v.lcp_[i], valid - 1);
    while (d < t.size() && !levels[d].empty()) {
      bool b = bottom[d];
      auto next = Matcher::advance(*g_, levels[d], std::string_view(&t[d], 1), &b);
      ++d;
      if (levels.size() <= d) {
        levels.resize(d + 1);
        bottom.resize(d + 1);
      }
      levels[d] = std::move(next);
      bottom[d] = b;
    }
    valid = d + 1;
    if (d == t.size() && !levels[d].empty()) m.accepted[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
    else if (bottom[d]) m.dependent.push_back(id);
  }
  return m;
}

const TokenMasks::PositionMask& TokenMasks::position(const Stack& top) {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(top);
    if (it != cache_.end()) return *it->second;
  }
  auto m = std::make_unique<PositionMask>(compute(top));
  std::lock_guard lock(mu_);
  auto [it, _] = cache_.emplace(top, std::move(m));
  return *it->second;
}

void TokenMasks::allowed_tokens(const Matcher& m, TokenSet& out) {
  out.assign((vocab_->size() + 63) / 64, 0);
  std::vector<const PositionMask*> seen;
  for (const Stack& s : m.stacks()) {
    if (s.empty()) continue;
    const Stack top(s.end() - static_cast<std::ptrdiff_t>(std::min(kTopFrames, s.size())), s.end());
    const PositionMask& pm = position(top);
    if (std::find(seen.begin(), seen.end(), &pm) == seen.end()) {
      seen.push_back(&pm);
      for (size_t w = 0; w < out.size(); ++w) out[w] |= pm.accepted[w];
    }
    // The tokens that leave the position's rule: against this whole stack.
    for (int32_t id : pm.dependent) {
      if (allowed(out, id)) continue;
      if (!Matcher::advance(*g_, {s}, vocab_->bytes(id)).empty()) out[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
    }
  }
}

}  // namespace moemesh::grammar
