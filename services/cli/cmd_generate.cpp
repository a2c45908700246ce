// moemesh generate: continue a prompt of token ids, printing ids and tokens/s.
#include <chrono>
#include <iostream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/streaming_decoder.h"
#include "model/engine.h"
#include "model/drafter.h"
#include "model/scheduler.h"
#include "commands.h"
#include "engine_flags.h"

namespace moemesh::cli {

std::vector<int32_t> parse_id_list(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item.empty() || v < 0 || v > INT32_MAX)
      throw CLI::ValidationError("--prompt-ids", "'" + item + "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

void add_generate_command(CLI::App& app) {
  struct Args {
    std::string model, prompt_ids, prompt, chat, tokenizer;
    int64_t max_new = 32;
    cpu::SamplingParams sp;
    bool ignore_eos = false;
    int speculative = 0;
    std::string draft_policy = "adaptive";
    EngineFlags engine;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("generate", "generate tokens from a prompt");
  add_engine_flags(*cmd, a->engine, /*mla=*/true);
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  auto* ids_opt = cmd->add_option("--prompt-ids", a->prompt_ids, "comma-separated token ids, e.g. 0,100,200");
  auto* text_opt = cmd->add_option("--prompt", a->prompt, "prompt text (BOS added as the tokenizer config says)");
  auto* chat_opt = cmd->add_option("--chat", a->chat, "a user message, rendered with the chat template");
  ids_opt->excludes(text_opt)->excludes(chat_opt);
  text_opt->excludes(chat_opt);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer directory (default: the model directory)");
  cmd->add_option("--max-new-tokens", a->max_new, "tokens to generate")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--temperature", a->sp.temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", a->sp.top_k, "keep the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", a->sp.top_p, "nucleus mass")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->sp.seed, "sampling seed");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "do not stop at the end-of-sequence token");
  cmd->add_option("--speculative", a->speculative,
                  "draft K tokens per step with the MTP module and verify them (exact for greedy, rejection sampling otherwise)")
      ->check(CLI::Range(0, 16));
  cmd->add_option("--draft-policy", a->draft_policy,
                  "with --speculative: adaptive (up to K drafts, as many as pay, from measured acceptance and tokens per second) "
                  "or fixed (always K)")
      ->check(CLI::IsMember({"adaptive", "fixed"}))
      ->capture_default_str();
  cmd->callback([a] {
    std::shared_ptr<const tok::Tokenizer> tk;
    std::vector<int32_t> prompt;
    if (!a->prompt_ids.empty()) {
      prompt = parse_id_list(a->prompt_ids);
    } else if (!a->prompt.empty() || !a->chat.empty()) {
      tk = tok::Tokenizer::load(a->tokenizer.empty() ? a->model : a->tokenizer);
      if (!a->chat.empty()) {
        const auto tpl = tok::ChatTemplate::for_tokenizer(*tk);
        prompt = tk->encode(tpl.render(nlohmann::json::array({{{"role", "user"}, {"content", a->chat}}}), true), false);
      } else {
        prompt = tk->encode(a->prompt, true);
      }
    }
    if (prompt.empty()) throw CLI::ValidationError("generate", "give --prompt-ids, --prompt or --chat");
    EngineOptions opts = a->engine.options();
    opts.kv_tokens = static_cast<int64_t>(prompt.size()) + a->max_new + 64;
    Engine engine(a->model, opts);
    // One request through the scheduler, as the mesh serves it (with the MTP
    // module drafting in this process when asked).
    SchedulerOptions so;
    so.adaptive_speculation = a->draft_policy == "adaptive";
    Scheduler scheduler(engine, so);
    std::unique_ptr<LocalDrafter> drafter;
    if (a->speculative > 0) {
      drafter = std::make_unique<LocalDrafter>(engine);
      scheduler.set_drafter(drafter.get(), a->speculative);
    }
    GenerationRequest r;
    r.id = 1;
    r.prompt = prompt;
    r.max_new_tokens = a->max_new;
    r.sampling = a->sp;
    if (!a->ignore_eos) r.stop_ids = {static_cast<int32_t>(engine.config().eos_token_id)};
    scheduler.submit(r);
    std::optional<tok::StreamingDecoder> text;
    if (tk) text.emplace(tk);
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    std::optional<clock::time_point> first;
    std::vector<int32_t> out;
    while (!scheduler.idle()) {
      for (const TokenEvent& e : scheduler.step()) {
        if (e.token >= 0) {
          if (!first) first = clock::now();
          out.push_back(e.token);
          if (text) std::cout << text->push(e.token) << std::flush;
        }
        if (e.finish == FinishReason::Error) throw std::runtime_error("generation failed: " + e.error);
      }
    }
    const auto t2 = clock::now();
    if (text) {
      std::cout << text->finish() << "\n";
    } else {
      for (size_t i = 0; i < out.size(); ++i) std::cout << (i ? "," : "") << out[i];
      std::cout << "\n";
    }
    const double pre = std::chrono::duration<double>(first.value_or(t2) - t0).count();
    const double dec = std::chrono::duration<double>(t2 - first.value_or(t2)).count();
    std::cerr << "prefill: " << prompt.size() << " tokens in " << pre * 1e3 << " ms (" << prompt.size() / pre
              << " tok/s); decode: " << (out.empty() ? 0 : out.size() - 1) << " tokens, "
              << (out.size() > 1 && dec > 0 ? (out.size() - 1) / dec : 0.0) << " tok/s\n";
    if (a->speculative > 0) {
      const SpeculationStats& st = scheduler.speculation();
      std::cerr << "speculative k<=" << a->speculative << " (" << a->draft_policy << "): " << st.tokens_per_step(static_cast<int64_t>(out.size()))
                << " tokens/step; acceptance per draft position:";
      for (int i = 0; i < a->speculative; ++i) std::cerr << " " << st.acceptance(i);
      std::cerr << "\n";
    }
  });
}

}  // namespace moemesh::cli
