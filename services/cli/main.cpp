// moemesh: one binary, one subcommand per job.
#include <cstdlib>
#include <iostream>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/mesh_actor.h"
#include "kernels/cpu/thread_pool.h"
#include "cmd_tokenize.h"
#include "commands.h"

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries results (and a role's endpoint).
  spdlog::set_default_logger(spdlog::stderr_color_mt("moemesh"));
  CLI::App app{"moemesh: serves DeepSeek-V3-architecture models as a mesh of services"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moemesh 0.1.0");
  std::string log_level = "info";
  int threads = 0;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--threads", threads, "compute threads (default: all cores, or MOEMESH_THREADS)");
  moemesh::cli::add_make_model_command(app);
  moemesh::cli::add_eval_command(app);
  moemesh::cli::add_perplexity_command(app);
  moemesh::cli::add_draft_vocab_command(app);
  moemesh::cli::add_generate_command(app);
  moemesh::cli::add_bench_command(app);
  moemesh::cli::add_tokenize_commands(app);
  moemesh::cli::add_serve_command(app);
  moemesh::cli::add_up_command(app);
  moemesh::cli::add_bench_mesh_command(app);
  moemesh::cli::add_bench_speculative_command(app);
  moemesh::cli::add_bench_skew_command(app);
  moemesh::cli::add_bench_chat_command(app);
  moemesh::cli::add_bench_chaos_command(app);
  moemesh::cli::add_bench_replicas_command(app);
  moemesh::cli::add_chat_command(app);
  moemesh::cli::add_config_command(app);
  moemesh::cli::add_keygen_command(app);
  app.parse_complete_callback([&] {
    spdlog::set_level(spdlog::level::from_str(log_level));
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL overrides
    spdlog::set_pattern("%^[%H:%M:%S.%e %l]%$ %v");
    if (threads > 0) moemesh::cpu::set_num_threads(threads);
  });
  struct ActorSystemGuard {
    ~ActorSystemGuard() { moemesh::shutdown_actor_system(); }
  } guard;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
