// moemesh tokenize / detokenize: JSON lines in, JSON lines out.
#pragma once

namespace CLI {
class App;
}

namespace moemesh::cli {
void add_tokenize_commands(CLI::App& app);
}  // namespace moemesh::cli
