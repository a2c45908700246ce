// A draft vocabulary: the MTP head restricted to the tokens a model emits
// most (as FR-Spec does), so a draft step reads a fraction of the head, which
// on a small model is most of the MTP layer's cost. Drafts are proposals the
// main model verifies, so greedy output stays exactly the same; sampled output
// keeps its distribution (a draft distribution that is zero outside the subset
// is still a valid proposal). Made by `moemesh draft-vocab` from token counts
// over a text; the MTP module uses the checkpoint directory's draft_vocab.json
// when there is one (docs/MESH.md, "Speculative decoding").
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace moemesh {

struct DraftVocab {
  std::vector<int32_t> ids;  // most frequent first, no repeats
  std::string source;        // what the counts came from, for the log
};

constexpr const char* kDraftVocabFile = "draft_vocab.json";

// The most frequent `size` ids of `tokens` (ties: lower id first), `always`
// included first (end of sequence: a draft must be able to stop). Ids never
// seen do not fill the list: it may come out shorter than `size`.
DraftVocab count_draft_vocab(const std::vector<int32_t>& tokens, int64_t vocab, int64_t size,
                             const std::vector<int32_t>& always, std::string source);

// dir/draft_vocab.json when it exists; throws CheckpointError naming the file
// when it is malformed or names ids outside [0, vocab).
std::optional<DraftVocab> load_draft_vocab(const std::filesystem::path& dir, int64_t vocab);
void save_draft_vocab(const std::filesystem::path& file, const DraftVocab& v, int64_t vocab);

}  // namespace moemesh
