#include "cmd_tokenize.h"

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/tokenizer/chat_template.h"
#include "core/tokenizer/tokenizer.h"

namespace moemesh::cli {
namespace {

using nlohmann::json;

// One input line to one output line; a bad line gets {"error": ...} and the
// stream goes on.
template <class Fn>
int each_line(Fn&& fn) {
  std::string line;
  int bad = 0;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    json out;
    try {
      out = fn(json::parse(line));
    } catch (const std::exception& e) {
      out = {{"error", e.what()}};
      ++bad;
    }
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
  return bad;
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* tok = app.add_subcommand("tokenize",
                                 "JSON lines {\"text\", \"add_special_tokens\"} or {\"messages\", \"add_generation_prompt\"} "
                                 "on stdin -> {\"ids\"} or {\"text\", \"ids\"}");
  tok->add_option("--tokenizer", *path, "model directory or tokenizer.json")->required();
  tok->callback([path] {
    auto t = tok::Tokenizer::load(*path);
    std::optional<tok::ChatTemplate> tpl;
    const int bad = each_line([&](const json& in) -> json {
      if (!in.is_object()) throw std::invalid_argument("each line must be a JSON object");
      if (in.contains("messages")) {
        if (!tpl) tpl = tok::ChatTemplate::for_tokenizer(*t);
        const std::string text = tpl->render(in["messages"], in.value("add_generation_prompt", false));
        return {{"text", text}, {"ids", t->encode(text, false)}};
      }
      if (!in.contains("text") || !in["text"].is_string()) throw std::invalid_argument("\"text\" must be a string");
      return {{"ids", t->encode(in["text"].get<std::string>(), in.value("add_special_tokens", true))}};
    });
    if (bad) throw CLI::RuntimeError(1);
  });

  auto dpath = std::make_shared<std::string>();
  auto* det = app.add_subcommand("detokenize", "JSON lines {\"ids\", \"skip_special_tokens\"} on stdin -> {\"text\"}");
  det->add_option("--tokenizer", *dpath, "model directory or tokenizer.json")->required();
  det->callback([dpath] {
    auto t = tok::Tokenizer::load(*dpath);
    const int bad = each_line([&](const json& in) -> json {
      if (!in.is_object() || !in.contains("ids") || !in["ids"].is_array()) throw std::invalid_argument("\"ids\" must be an array");
      std::vector<int32_t> ids;
      for (const auto& v : in["ids"]) {
        if (!v.is_number_integer()) throw std::invalid_argument("ids must be integers");
        const int64_t x = v.get<int64_t>();
        if (x < 0 || x > INT32_MAX) throw std::invalid_argument("token id " + std::to_string(x) + " is outside the vocabulary");
        ids.push_back(static_cast<int32_t>(x));
      }
      return {{"text", t->decode(ids, in.value("skip_special_tokens", false))}};
    });
    if (bad) throw CLI::RuntimeError(1);
  });
}

}  // namespace moemesh::cli
