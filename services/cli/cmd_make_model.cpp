// moemesh make-model: random-weight checkpoints in the Hugging Face layout.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "model/checkpoint_maker.h"
#include "commands.h"

namespace moemesh::cli {

void write_model(const MakeModelOptions& opts, const std::string& out, std::string tok_dir) {
  if (tok_dir.empty() && (opts.preset == "demo" || opts.preset == "real-vocab")) {
    const char* env = std::getenv("MOEMESH_TOKENIZER_DIR");
    tok_dir = env ? env : MOEMESH_DEFAULT_TOKENIZER_DIR;
    if (!std::filesystem::exists(std::filesystem::path(tok_dir) / "tokenizer.json"))
      throw std::runtime_error("the demo and real-vocab models carry DeepSeek-V3's tokenizer, but " + tok_dir +
                               " has no tokenizer.json: run scripts/setup.sh or pass --tokenizer DIR");
  }
  const ModelConfig c = make_model(opts, out);
  if (!tok_dir.empty()) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      std::filesystem::copy_file(std::filesystem::path(tok_dir) / f, std::filesystem::path(out) / f,
                                 std::filesystem::copy_options::overwrite_existing);
  }
  spdlog::info("wrote {} ({} layers, {} experts, vocab {}, {}) to {}", opts.preset, c.num_hidden_layers,
               c.n_routed_experts, c.vocab_size, opts.fp8 ? "fp8" : "bf16", out);
}

void add_make_model_command(CLI::App& app) {
  auto opts = std::make_shared<MakeModelOptions>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("bf16");
  auto dequant = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("make-model", "write a random-weight DeepSeek-V3 checkpoint");
  cmd->add_option("--preset", opts->preset, "model shape")->check(CLI::IsMember(model_presets()));
  cmd->add_option("--dtype", *dtype, "weight type of linear layers")->check(CLI::IsMember({"bf16", "fp8", "f32"}));
  cmd->add_option("--seed", opts->seed, "random seed (same seed, same weights)");
  cmd->add_option("--out", *out, "output directory")->required();
  cmd->add_option("--shard-bytes", opts->shard_bytes, "maximum bytes per safetensors shard")->check(CLI::PositiveNumber);
  cmd->add_option("--layers", opts->layers, "override the number of decoder layers");
  cmd->add_option("--experts", opts->experts, "override the number of routed experts");
  cmd->add_option("--vocab", opts->vocab, "override the vocabulary size");
  cmd->add_option("--dequantize-from", *dequant,
                  "instead of generating, write the bf16 twin of this fp8 checkpoint (--dtype bf16) "
                  "or its exact f32 twin (--dtype f32)");
  cmd->add_option("--tokenizer", *tokenizer,
                  "copy tokenizer.json and tokenizer_config.json from this directory into the model "
                  "(default for --preset demo: DeepSeek-V3's, installed by scripts/setup.sh)");
  cmd->callback([=] {
    if (!dequant->empty()) {
      dequantize_checkpoint(*dequant, *out, *dtype == "f32" ? DType::F32 : DType::BF16);
      spdlog::info("wrote the dequantized twin of {} to {}", *dequant, *out);
      return;
    }
    if (*dtype == "f32") throw CLI::ValidationError("--dtype f32 is only for --dequantize-from");
    opts->fp8 = *dtype == "fp8";
    write_model(*opts, *out, *tokenizer);
  });
}

}  // namespace moemesh::cli
