// JSON Schema to grammar (docs/STRUCTURED_OUTPUT.md lists what is supported):
// the text of every sentence of the grammar is JSON that validates against
// the schema. A keyword outside the supported set is refused (SchemaError
// names it), never silently dropped, so a constraint can only be exact or
// narrower (e.g. at most one space between tokens, properties in the schema's
// order, numbers of at most 16 digits).
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace moemesh::grammar {

class SchemaError : public std::runtime_error {
 public:
  // `where`: the keyword at fault as a path (e.g. "properties.name.pattern").
  SchemaError(std::string where, const std::string& message) : std::runtime_error(message), where_(std::move(where)) {}
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

// The grammar text (Grammar::parse takes it) of `schema`. Throws SchemaError.
// Properties come in the order the schema lists them: with nlohmann::json,
// whose objects sort their keys, that is alphabetical; ordered_json keeps the
// order the client wrote.
std::string json_schema_grammar(const nlohmann::json& schema);
std::string json_schema_grammar(const nlohmann::ordered_json& schema);
// For grammars embedding several schemas (tool calls): the rules of `schema`
// alone, each name starting with `prefix` (letters, digits, '-'), the top one
// `<prefix>root`; they use the shared rules of json_common_rules(), written once.
std::string json_schema_rules(const nlohmann::ordered_json& schema, const std::string& prefix);
std::string json_common_rules();
// Any JSON object (response_format json_object).
std::string json_object_grammar();

}  // namespace moemesh::grammar
