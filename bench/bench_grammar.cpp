// Structured output costs on the real vocabulary: schema compile time, token
// mask time per step (cold: positions computed on first visit; warm: cached),
// and, with a model, tokens/s of one sampled request with and without the
// schema in the same run.
//   bench_grammar TOKENIZER_DIR [MODEL_DIR [TOKENS]]
// Prints JSON lines; docs/BENCHMARKS.md records them.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>

#include "core/grammar/constraint_cache.h"
#include "core/grammar/json_schema.h"
#include "core/tokenizer/tokenizer.h"
#include "model/scheduler.h"

using namespace moemesh;
using clk = std::chrono::steady_clock;
static double since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

static const char* kSchemas[] = {
    R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "email": {"type": "string"}}, "required": ["name", "age"]})",
    R"({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string", "maxLength": 12}, "qty": {"type": "integer"}, "price": {"type": "number"}}, "required": ["sku", "qty"]}, "maxItems": 5}, "status": {"enum": ["open", "paid", "shipped"]}}, "required": ["items", "status"]})",
    R"({"$defs": {"node": {"type": "object", "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}}, "required": ["label"]}}, "$ref": "#/$defs/node"})",
};

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_grammar TOKENIZER_DIR [MODEL_DIR [TOKENS]]\n";
    return 2;
  }
  auto tk = tok::Tokenizer::load(argv[1]);
  int64_t V = static_cast<int64_t>(tk->vocab_size());
  std::unique_ptr<Engine> engine;
  if (argc > 2) {
    EngineOptions o;
    o.kv_tokens = 4096;
    o.prefix_cache = false;
    engine = std::make_unique<Engine>(argv[2], o);
    V = engine->config().vocab_size;
  }
  auto t0 = clk::now();
  std::vector<std::string> bytes(static_cast<size_t>(V));
  for (int64_t id = 0; id < V && id < static_cast<int64_t>(tk->vocab_size()); ++id)
    if (!tk->is_special(static_cast<int32_t>(id))) bytes[static_cast<size_t>(id)] = tk->token_bytes(static_cast<int32_t>(id));
  auto vocab = std::make_shared<const grammar::TokenBytes>(std::move(bytes));
  std::cout << "{\"what\": \"token table\", \"tokens\": " << V << ", \"seconds\": " << since(t0) << "}\n";

  for (size_t s = 0; s < std::size(kSchemas); ++s) {
    t0 = clk::now();
    const std::string text = grammar::json_schema_grammar(nlohmann::ordered_json::parse(kSchemas[s]));
    auto g = std::make_shared<const grammar::Grammar>(grammar::Grammar::parse(text));
    const double compile = since(t0);
    grammar::TokenMasks masks(g, vocab);
    // A random walk through the grammar, token by token, as sampling would go.
    for (int pass = 0; pass < 2; ++pass) {
      std::mt19937 rng(7);
      grammar::Matcher m(g);
      grammar::TokenSet allowed;
      double total = 0, worst = 0;
      int steps = 0;
      for (; steps < 200; ++steps) {
        t0 = clk::now();
        masks.allowed_tokens(m, allowed);
        const double dt = since(t0);
        total += dt;
        worst = std::max(worst, dt);
        std::vector<int32_t> ok;
        for (int32_t t = 0; t < V; ++t)
          if (grammar::allowed(allowed, t)) ok.push_back(t);
        if (ok.empty() || (m.accepting() && rng() % 4 == 0)) break;
        m.accept(vocab->bytes(ok[rng() % ok.size()]));
        if (m.accepting() && !m.can_continue()) break;
      }
      std::cout << "{\"schema\": " << s << ", \"compile_ms\": " << compile * 1e3 << ", \"pass\": \"" << (pass ? "warm" : "cold")
                << "\", \"steps\": " << steps << ", \"mask_ms_mean\": " << total / std::max(1, steps) * 1e3
                << ", \"mask_ms_max\": " << worst * 1e3 << ", \"positions\": " << masks.positions_computed() << "}\n";
    }
  }

  if (!engine) return 0;
  // One request, sampled, no stop ids: tokens/s with and without the schema.
  const int64_t n = argc > 3 ? std::atoi(argv[3]) : 64;
  grammar::ConstraintCache cache(vocab);
  const std::string text = grammar::json_schema_grammar(nlohmann::json::parse(R"({"type": "object", "properties":
      {"notes": {"type": "array", "items": {"type": "string"}}}, "required": ["notes"]})"));
  for (int warm = 0; warm < 2; ++warm) {
    for (bool constrained : {false, true}) {
      Scheduler sch(*engine);
      GenerationRequest r{1, tk->encode("Write notes as JSON.", true), n, {}, {}};
      r.sampling = {1.0f, 0, 1.0f, 3, 0.0f};
      if (constrained) {
        r.grammar = text;
        r.constraint = cache.get(text);
      }
      sch.submit(r);
      int64_t tokens = 0;
      t0 = clk::now();
      while (!sch.idle())
        for (const auto& e : sch.step()) tokens += e.token >= 0;
      const double dt = since(t0);
      if (warm) std::cout << "{\"model\": \"" << argv[2] << "\", \"constrained\": " << constrained << ", \"tokens\": " << tokens
                          << ", \"tokens_per_s\": " << tokens / dt << "}\n";
    }
  }
}
