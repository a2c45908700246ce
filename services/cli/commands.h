// Each subcommand registers itself on the moemesh CLI11 app.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "model/checkpoint_maker.h"

namespace moemesh::cli {

void add_make_model_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_draft_vocab_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_up_command(CLI::App& app);
void add_bench_mesh_command(CLI::App& app);
void add_bench_speculative_command(CLI::App& app);
void add_bench_skew_command(CLI::App& app);
void add_bench_chat_command(CLI::App& app);
void add_bench_chaos_command(CLI::App& app);
void add_bench_replicas_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_keygen_command(CLI::App& app);

// Writes a random-weight checkpoint (the demo preset also gets DeepSeek-V3's tokenizer).
void write_model(const MakeModelOptions& opts, const std::string& out, std::string tokenizer_dir = {});
// This executable's path, to start roles as child processes.
std::string self_binary();
// Blocks until SIGINT or SIGTERM (true) or until `also` becomes true (false).
bool wait_for_signal(const std::function<bool()>& also = {});

}  // namespace moemesh::cli
