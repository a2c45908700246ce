// The main job as a newcomer runs it: `moemesh up --chat` with no model named
// serves the trained demo model, which answers in English words and stops by
// itself (finish: stop) on a short prompt.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/support/shell.h"
#include "tests/support/test_models.h"

using namespace moemesh::testing;

namespace {
std::string bin() {
  const char* b = std::getenv("MOEMESH_BIN");
  return b ? b : "build/services/moemesh";
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  const std::regex w("[A-Za-z]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), w); it != std::sregex_iterator(); ++it) {
    std::string s = it->str();
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back(s);
  }
  return out;
}
}  // namespace

TEST(DemoChat, TheDefaultModelAnswersInWordsAndStops) {
  // The dictionary: the words of the held-out text (the training text is not in the tree).
  std::stringstream ss;
  ss << std::ifstream(trained_model().parent_path() / "heldout.txt").rdbuf();
  const auto dict_words = words(ss.str());
  const std::set<std::string> dict(dict_words.begin(), dict_words.end());
  ASSERT_GT(dict.size(), 1000u);
  for (const std::string prompt : {"Hello!", "The LORD is my shepherd"}) {
    const auto dir = temp_dir("demo-chat");
    const Shell r = run("(env -u MOEMESH_MODEL " + bin() + " up --chat '" + prompt + "' --max-new-tokens 96 2>" +
                        (dir / "log").string() + ")");
    std::stringstream log;
    log << std::ifstream(dir / "log").rdbuf();
    ASSERT_EQ(r.code, 0) << log.str();
    EXPECT_NE(log.str().find("assets/moemesh-kjv/bf16"), std::string::npos) << "served the trained model:\n" << log.str();
    EXPECT_NE(log.str().find("finish: stop"), std::string::npos) << "stopped by itself:\n" << r.out << "\n" << log.str();
    const auto said = words(r.out);
    ASSERT_GE(said.size(), 3u) << r.out;
    size_t known = 0, ascii = 0;
    for (const auto& w : said) known += dict.count(w);
    for (unsigned char c : r.out) ascii += c < 128;
    std::printf("%s -> %s", prompt.c_str(), r.out.c_str());
    EXPECT_GE(known, 0.8 * said.size()) << r.out;
    EXPECT_GE(ascii, 0.95 * r.out.size()) << r.out;
  }
}
