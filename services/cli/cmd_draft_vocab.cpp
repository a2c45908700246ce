// moemesh draft-vocab: the draft vocabulary of a checkpoint (model/draft_vocab.h),
// the tokens most frequent in texts like those it will serve, written where the
// MTP module finds it.
#include <filesystem>
#include <iostream>

#include "core/model_config.h"
#include "model/draft_vocab.h"
#include "commands.h"
#include "text_file.h"

namespace moemesh::cli {

void add_draft_vocab_command(CLI::App& app) {
  struct Args {
    std::string model, tokenizer, out;
    std::vector<std::string> texts;
    int64_t size = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("draft-vocab",
                                 "count tokens over texts like those served and write the MTP drafts' vocabulary (draft_vocab.json)");
  cmd->add_option("--model", a->model, "checkpoint directory")->required();
  cmd->add_option("--text", a->texts, "UTF-8 text files to count tokens in (repeatable)")->required();
  cmd->add_option("--size", a->size, "tokens in the draft vocabulary (default: a quarter of the model's)")->check(CLI::PositiveNumber);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer directory (default: the model directory)");
  cmd->add_option("--out", a->out, "file to write (default: MODEL/draft_vocab.json, where the MTP module reads it)");
  cmd->callback([a] {
    const ModelConfig mc = ModelConfig::load(a->model);
    const int64_t V = mc.vocab_size;
    const int64_t size = a->size > 0 ? a->size : std::max<int64_t>(1, V / 4);
    if (size > V) throw CLI::ValidationError("--size", std::to_string(size) + " exceeds the vocabulary (" + std::to_string(V) + ")");
    std::vector<int32_t> tokens;
    std::string source;
    for (const auto& t : a->texts) {
      const auto ids = tokenize_file(t, a->tokenizer.empty() ? a->model : a->tokenizer);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      source += (source.empty() ? "" : ", ") + std::filesystem::path(t).filename().string();
    }
    if (tokens.empty()) throw CLI::ValidationError("--text", "the texts hold no tokens to count");
    source = std::to_string(tokens.size()) + " tokens of " + source;
    const DraftVocab v = count_draft_vocab(tokens, V, size, {static_cast<int32_t>(mc.eos_token_id)}, source);
    std::vector<bool> in(static_cast<size_t>(V), false);
    for (int32_t t : v.ids) in[static_cast<size_t>(t)] = true;
    size_t covered = 0;
    for (int32_t t : tokens) covered += in[static_cast<size_t>(t)];
    const std::string out = a->out.empty() ? (std::filesystem::path(a->model) / kDraftVocabFile).string() : a->out;
    save_draft_vocab(out, v, V);
    std::cout << "draft vocabulary: " << v.ids.size() << " of " << V << " tokens, covering "
              << (tokens.empty() ? 0.0 : 100.0 * static_cast<double>(covered) / static_cast<double>(tokens.size()))
              << " % of the " << tokens.size() << " tokens counted; written to " << out << "\n";
  });
}

}  // namespace moemesh::cli
