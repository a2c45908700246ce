// Single-threaded encode throughput on a text file: bench_tokenizer TOKENIZER_DIR FILE [REPEATS]
// Prints one JSON line; bench/tokenizer_vs_hf.sh runs it beside Hugging Face's tokenizer.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: bench_tokenizer TOKENIZER_DIR FILE [REPEATS]\n";
    return 2;
  }
  auto tok = moemesh::tok::Tokenizer::load(argv[1]);
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  double best = 1e30;
  size_t n = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    n = tok->encode(text, false).size();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::cout << "{\"impl\": \"moemesh\", \"bytes\": " << text.size() << ", \"tokens\": " << n << ", \"seconds\": " << best
            << ", \"MBps\": " << text.size() / best / 1e6 << "}\n";
}
