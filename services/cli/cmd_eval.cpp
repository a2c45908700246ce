// moemesh eval: logits of every position for given sequences, for comparing
// implementations (docs/EVAL.md).
#include <fstream>

#include <spdlog/spdlog.h>

#include "model/eval.h"
#include "services/cli/commands.h"

namespace moemesh::cli {

void add_eval_command(CLI::App& app) {
  struct Args { std::string model, input, out, mla = "auto"; };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "run token sequences through the model and write every position's logits");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--input", a->input, "input JSON: {\"sequences\": [[ids...]], \"greedy\": {...}}")->required();
  cmd->add_option("--out", a->out, "output JSON")->required();
  cmd->add_option("--mla", a->mla, "attention path")->check(CLI::IsMember({"auto", "naive", "absorbed"}));
  cmd->callback([a] {
    std::ifstream in(a->input);
    if (!in) throw std::runtime_error("cannot open " + a->input);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(a->input + ": invalid JSON: " + e.what());
    }
    const EvalRequest req = EvalRequest::from_json(j);
    EngineOptions opts;
    opts.mla_mode = a->mla == "naive" ? MlaMode::Naive : a->mla == "absorbed" ? MlaMode::Absorbed : MlaMode::Auto;
    int64_t tokens = 0;
    for (const auto& s : req.sequences) tokens += static_cast<int64_t>(s.size());
    opts.kv_tokens = std::max<int64_t>(opts.kv_tokens, tokens + req.greedy_prompt.size() + req.greedy_new_tokens + 1024);
    Engine engine(a->model, opts);
    const nlohmann::json out = run_eval(engine, req);
    std::ofstream o(a->out);
    o << out.dump() << "\n";
    if (!o) throw std::runtime_error("cannot write " + a->out);
    spdlog::info("eval: {} sequences, {} tokens -> {}", req.sequences.size(), tokens, a->out);
  });
}

}  // namespace moemesh::cli
