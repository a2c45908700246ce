#include "core/grammar/matcher.h"

#include <algorithm>

namespace moemesh::grammar {

namespace {
void dedupe(std::vector<Stack>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  if (v.size() > Matcher::kMaxStacks)
    throw GrammarError("grammar: more than " + std::to_string(Matcher::kMaxStacks) + " parses at once (too ambiguous)");
}
}  // namespace

void Matcher::expand(const Grammar& g, Stack s, std::vector<Stack>& out, bool* bottom) {
  // Reused across calls: masks call this for every byte of every token.
  thread_local std::vector<Stack> work;
  work.clear();
  work.push_back(std::move(s));
  size_t steps = 0;
  while (!work.empty()) {
    if (++steps > 1000000) throw GrammarError("grammar: expanding a position took too long (too ambiguous)");
    Stack cur = std::move(work.back());
    work.pop_back();
    if (cur.empty()) {
      // A whole sentence; or, walking from one stack's top alone, popped past
      // it: what follows depends on the frames below.
      if (bottom) *bottom = true;
      else out.push_back(std::move(cur));
      continue;
    }
    const uint32_t p = cur.back();
    const Elem& e = g.at(p);
    if (e.op == Op::Bytes) {
      out.push_back(std::move(cur));
      continue;
    }
    if (e.op == Op::End) {
      cur.pop_back();
      work.push_back(std::move(cur));
      continue;
    }
    // A rule: its continuation stays below (none when it is last: the frame
    // goes, so right recursion does not grow the stack), each alternative on top.
    if (g.at(p + 1).op == Op::End) cur.pop_back();
    else cur.back() = p + 1;
    const auto alts = g.alternatives(e.arg);
    for (size_t k = 0; k < alts.size(); ++k) {
      Stack next = k + 1 < alts.size() ? cur : std::move(cur);
      next.push_back(alts[k]);
      work.push_back(std::move(next));
    }
  }
}

std::vector<Stack> Matcher::advance(const Grammar& g, std::vector<Stack> from, std::string_view bytes, bool* bottom) {
  for (unsigned char b : bytes) {
    std::vector<Stack> next;
    for (Stack& s : from) {
      if (s.empty() || !g.has(g.at(s.back()).arg, b)) continue;
      ++s.back();
      expand(g, std::move(s), next, bottom);
    }
    if (next.empty()) return next;
    dedupe(next);
    from = std::move(next);
  }
  return from;
}

Matcher::Matcher(std::shared_ptr<const Grammar> g) : g_(std::move(g)) {
  for (uint32_t a : g_->alternatives(g_->root())) expand(*g_, Stack{a}, stacks_, nullptr);
  dedupe(stacks_);
}

bool Matcher::accept(std::string_view bytes) {
  auto next = advance(*g_, stacks_, bytes);
  if (next.empty()) return false;
  stacks_ = std::move(next);
  return true;
}

bool Matcher::accept_byte(uint8_t b) {
  const char c = static_cast<char>(b);
  return accept(std::string_view(&c, 1));
}

bool Matcher::accepting() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool Matcher::can_continue() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return !s.empty(); });
}

}  // namespace moemesh::grammar
