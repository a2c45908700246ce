// Each subcommand registers itself on the moemesh CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace moemesh::cli {

void add_make_model_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace moemesh::cli
