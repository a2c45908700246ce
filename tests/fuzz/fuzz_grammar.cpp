// libFuzzer target: the structured-output engine on untrusted input. The first
// byte picks what the rest is: a grammar text then (after a NUL) a text to
// match, or a JSON Schema compiled to a grammar. Nothing may crash, hang or
// disagree with itself: a text the matcher takes byte by byte is taken whole.
#include <string>
#include <string_view>

#include "core/grammar/json_schema.h"
#include "core/grammar/matcher.h"

using namespace moemesh::grammar;

namespace {
void match(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  Matcher bytewise(g);
  size_t taken = 0;
  while (taken < text.size() && bytewise.accept_byte(static_cast<uint8_t>(text[taken]))) ++taken;
  Matcher whole(g);
  if (!whole.accept(text.substr(0, taken))) __builtin_trap();
  if (whole.accepting() != bytewise.accepting()) __builtin_trap();
  if (!bytewise.accepting() && !bytewise.can_continue()) __builtin_trap();  // every rule derives finite text
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] & 1) {
      const auto schema = nlohmann::ordered_json::parse(in, nullptr, true, false);
      const std::string text = json_schema_grammar(schema);
      auto g = std::make_shared<const Grammar>(Grammar::parse(text));
      match(g, in);
    } else {
      const size_t cut = in.find('\0');
      auto g = std::make_shared<const Grammar>(Grammar::parse(in.substr(0, cut)));
      match(g, cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1));
    }
  } catch (const GrammarError&) {
  } catch (const SchemaError&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
