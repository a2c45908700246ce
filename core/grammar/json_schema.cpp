#include "core/grammar/json_schema.h"

#include <cctype>
#include <map>
#include <set>

#include "core/grammar/grammar.h"

namespace moemesh::grammar {

namespace {

// The shared rules: whitespace (one optional space between tokens: compact
// JSON with ", " and ": " allowed, as xgrammar's default separators; a sampled
// answer cannot run away in whitespace, and few parse states mean few masks to
// compute), strings, numbers (at most 16 digits per part), any JSON value.
const char* kCommon = R"(ws ::= " "?
json-char ::= [^"\\\x00-\x1f\x80-\xff] | [\xc2-\xdf] [\x80-\xbf] | [\xe0-\xef] [\x80-\xbf] [\x80-\xbf] | [\xf0-\xf4] [\x80-\xbf] [\x80-\xbf] [\x80-\xbf] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
json-string ::= "\"" json-char* "\""
json-int ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
json-number ::= json-int ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
json-bool ::= "true" | "false"
json-null ::= "null"
json-value ::= json-object | json-array | json-string | json-number | json-bool | json-null
json-object ::= "{" ws ( json-string ws ":" ws json-value ws ( "," ws json-string ws ":" ws json-value ws )* )? "}"
json-array ::= "[" ws ( json-value ws ( "," ws json-value ws )* )? "]"
)";

template <class Json>
class Compiler {
 public:
  Compiler(const Json& root, std::string prefix) : root_(root), prefix_(std::move(prefix)) {}

  // `common`: with the shared rules (a grammar of its own), else only the schema's.
  std::string run(bool common) {
    const std::string top = rule_for(root_, "");
    std::string out = prefix_ + "root ::= " + top + "\n" + (common ? kCommon : "");
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out;
  }

 private:
  [[noreturn]] static void refuse(const std::string& where, const std::string& what) { throw SchemaError(where, what); }
  static std::string join(const std::string& where, const std::string& key) { return where.empty() ? key : where + "." + key; }

  // A rule name for the schema at `where` (defined once per path or $ref).
  std::string rule_for(const Json& s, const std::string& where) {
    if (++depth_ > 64) refuse(where, "schema nested more than 64 levels deep");
    struct Leave { int& d; ~Leave() { --d; } } leave{depth_};
    if (s.is_boolean()) {
      if (!s.template get<bool>()) refuse(where, "a false schema admits nothing");
      return "json-value";
    }
    if (!s.is_object()) refuse(where, "a schema must be an object or a boolean");
    if (s.contains("$ref")) return ref(s, where);
    const std::string name = prefix_ + "s" + std::to_string(rules_.size() + pending_++);
    std::string body = body_for(s, where);
    rules_.emplace_back(name, std::move(body));
    return name;
  }

  std::string ref(const Json& s, const std::string& where) {
    for (const auto& [k, _] : s.items())
      if (k != "$ref" && k != "description" && k != "title" && k != "$defs" && k != "definitions" && k != "$schema")
        refuse(join(where, k), "'" + k + "' next to $ref is not supported");
    if (!s["$ref"].is_string()) refuse(join(where, "$ref"), "$ref must be a string");
    const std::string r = s["$ref"];
    std::string key;
    for (const char* prefix : {"#/$defs/", "#/definitions/"})
      if (r.rfind(prefix, 0) == 0) key = std::string(prefix).substr(2, std::string(prefix).size() - 3) + "\x1f" + r.substr(std::string(prefix).size());
    if (r == "#") key = "#";
    if (key.empty()) refuse(join(where, "$ref"), "$ref '" + r + "' is not supported (only #, #/$defs/NAME, #/definitions/NAME)");
    auto it = refs_.find(key);
    if (it != refs_.end()) return it->second;
    // Named before it is compiled, so recursive references find it.
    const std::string name = prefix_ + "ref" + std::to_string(refs_.size());
    refs_[key] = name;
    const Json* target = &root_;
    if (key != "#") {
      const std::string group = key.substr(0, key.find('\x1f')), def = key.substr(key.find('\x1f') + 1);
      if (!root_.contains(group) || !root_[group].is_object() || !root_[group].contains(def))
        refuse(join(where, "$ref"), "$ref '" + r + "' names no definition");
      target = &root_[group][def];
    }
    const std::string inner = rule_for(*target, key == "#" ? "" : "$defs." + key.substr(key.find('\x1f') + 1));
    rules_.emplace_back(name, inner);
    return name;
  }

  std::string body_for(const Json& s, const std::string& where) {
    static const std::set<std::string> known = {"type", "properties", "required", "additionalProperties", "items", "minItems",
                                                "maxItems", "enum", "const", "anyOf", "$defs", "definitions", "minLength",
                                                "maxLength", "title", "description", "$schema", "$id", "strict"};
    for (const auto& [k, _] : s.items())
      if (!known.count(k)) refuse(join(where, k), "the schema keyword '" + k + "' is not supported (docs/STRUCTURED_OUTPUT.md)");
    if (s.contains("const")) return value_literal(s["const"]);
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty()) refuse(join(where, "enum"), "enum must be a non-empty array");
      std::string alts;
      for (const auto& v : s["enum"]) alts += (alts.empty() ? "" : " | ") + value_literal(v);
      return alts;
    }
    if (s.contains("anyOf")) {
      const auto& a = s["anyOf"];
      if (!a.is_array() || a.empty()) refuse(join(where, "anyOf"), "anyOf must be a non-empty array");
      for (const auto& [k, _] : s.items())
        if (k != "anyOf" && k != "title" && k != "description" && k != "$defs" && k != "definitions" && k != "$schema")
          refuse(join(where, k), "'" + k + "' next to anyOf is not supported");
      std::string alts;
      for (size_t i = 0; i < a.size(); ++i) alts += (i ? " | " : "") + rule_for(a[i], join(where, "anyOf." + std::to_string(i)));
      return alts;
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const auto& t = s["type"];
      if (t.is_string()) types.push_back(t);
      else if (t.is_array() && !t.empty())
        for (const auto& x : t) {
          if (!x.is_string()) refuse(join(where, "type"), "type must be a string or an array of strings");
          types.push_back(x);
        }
      else refuse(join(where, "type"), "type must be a string or an array of strings");
    } else if (s.contains("properties")) {
      types.push_back("object");
    } else if (s.contains("items")) {
      types.push_back("array");
    } else {
      return "json-value";
    }
    std::string alts;
    for (const auto& t : types) alts += (alts.empty() ? "" : " | ") + typed(s, t, where);
    return alts;
  }

  // Keywords that belong to another type than the one(s) given are refused,
  // not ignored.
  void only(const Json& s, const std::string& where, const std::string& type, std::initializer_list<const char*> allowed) {
    static const std::set<std::string> generic = {"type", "title", "description", "$schema", "$id", "$defs", "definitions", "strict"};
    for (const auto& [k, _] : s.items()) {
      if (generic.count(k)) continue;
      bool ok = false;
      for (const char* a : allowed) ok = ok || k == a;
      if (ok) continue;
      // With several types, a keyword of another of them is fine.
      bool other = false;
      if (s.contains("type") && s["type"].is_array())
        for (const auto& t : s["type"]) other = other || keyword_of(k, t.template get<std::string>());
      if (!other) refuse(join(where, k), "'" + k + "' does not apply to type " + type);
    }
  }
  static bool keyword_of(const std::string& k, const std::string& type) {
    if (type == "object") return k == "properties" || k == "required" || k == "additionalProperties";
    if (type == "array") return k == "items" || k == "minItems" || k == "maxItems";
    if (type == "string") return k == "minLength" || k == "maxLength";
    return false;
  }
  static uint32_t count(const Json& s, const char* k, const std::string& where, uint32_t fallback, uint32_t cap) {
    if (!s.contains(k)) return fallback;
    if (!s[k].is_number_unsigned() && !(s[k].is_number_integer() && s[k].template get<int64_t>() >= 0))
      refuse(join(where, k), std::string(k) + " must be a non-negative integer");
    const uint64_t v = s[k].template get<uint64_t>();
    if (v > cap) refuse(join(where, k), std::string(k) + " above " + std::to_string(cap) + " is not supported");
    return static_cast<uint32_t>(v);
  }

  std::string typed(const Json& s, const std::string& type, const std::string& where) {
    if (type == "string") {
      only(s, where, type, {"minLength", "maxLength"});
      const uint32_t lo = count(s, "minLength", where, 0, 4096);
      const uint32_t hi = count(s, "maxLength", where, UINT32_MAX, 4096);
      if (hi < lo) refuse(join(where, "maxLength"), "maxLength is below minLength");
      if (lo == 0 && hi == UINT32_MAX) return "json-string";
      return "\"\\\"\" json-char{" + std::to_string(lo) + "," + (hi == UINT32_MAX ? "" : std::to_string(hi)) + "} \"\\\"\"";
    }
    if (type == "integer") { only(s, where, type, {}); return "json-int"; }
    if (type == "number") { only(s, where, type, {}); return "json-number"; }
    if (type == "boolean") { only(s, where, type, {}); return "json-bool"; }
    if (type == "null") { only(s, where, type, {}); return "json-null"; }
    if (type == "array") {
      only(s, where, type, {"items", "minItems", "maxItems"});
      const std::string item = s.contains("items") ? rule_for(s["items"], join(where, "items")) : "json-value";
      const uint32_t lo = count(s, "minItems", where, 0, 1024);
      const uint32_t hi = count(s, "maxItems", where, UINT32_MAX, 1024);
      if (hi < lo) refuse(join(where, "maxItems"), "maxItems is below minItems");
      if (hi == 0) return "\"[\" ws \"]\"";
      const std::string more = "( \",\" ws " + item + " ws ){" + std::to_string(lo > 0 ? lo - 1 : 0) + "," +
                               (hi == UINT32_MAX ? "" : std::to_string(hi - 1)) + "}";
      const std::string some = item + " ws " + more;
      return "\"[\" ws " + (lo == 0 ? "( " + some + " )?" : some) + " \"]\"";
    }
    if (type == "object") {
      only(s, where, type, {"properties", "required", "additionalProperties"});
      if (s.contains("additionalProperties") && !(s["additionalProperties"].is_boolean() && !s["additionalProperties"].template get<bool>()))
        refuse(join(where, "additionalProperties"), "only additionalProperties: false is supported");
      if (!s.contains("properties")) {
        if (s.contains("additionalProperties")) return "\"{\" ws \"}\"";
        return "json-object";
      }
      const auto& props = s["properties"];
      if (!props.is_object()) refuse(join(where, "properties"), "properties must be an object");
      std::set<std::string> required;
      if (s.contains("required")) {
        if (!s["required"].is_array()) refuse(join(where, "required"), "required must be an array of names");
        for (const auto& r : s["required"]) {
          if (!r.is_string() || !props.contains(r.template get<std::string>()))
            refuse(join(where, "required"), "required names " + r.dump() + ", which is not in properties");
          required.insert(r.template get<std::string>());
        }
      }
      // Properties in the schema's order; each optional one may be left out.
      // first_i: from property i on, none written yet; rest_i: some written (commas first).
      std::vector<std::string> kv, names;
      for (const auto& [k, v] : props.items()) {
        names.push_back(k);
        kv.push_back(literal("\"" + escape_json(k) + "\"") + " ws \":\" ws " + rule_for(v, join(where, "properties." + k)) + " ws");
      }
      const size_t n = kv.size();
      const std::string id = prefix_ + "o" + std::to_string(objects_++);
      for (size_t i = n + 1; i-- > 0;) {
        const std::string rest = id + "-rest" + std::to_string(i), first = id + "-first" + std::to_string(i);
        const std::string next_rest = id + "-rest" + std::to_string(i + 1), next_first = id + "-first" + std::to_string(i + 1);
        if (i == n) {
          rules_.emplace_back(rest, "\"\"");
          rules_.emplace_back(first, "\"\"");
          continue;
        }
        const bool req = required.count(names[i]) > 0;
        rules_.emplace_back(rest, "\",\" ws " + kv[i] + " " + next_rest + (req ? "" : " | " + next_rest));
        rules_.emplace_back(first, kv[i] + " " + next_rest + (req ? "" : " | " + next_first));
      }
      return "\"{\" ws " + id + "-first0 \"}\"";
    }
    refuse(join(where, "type"), "unknown type '" + type + "'");
  }

  static std::string escape_json(const std::string& k) {
    const std::string d = Json(k).dump();
    return d.substr(1, d.size() - 2);
  }
  // A JSON value as a literal: compact, as nlohmann dumps it.
  static std::string value_literal(const Json& v) {
    return literal(v.dump(-1, ' ', false, Json::error_handler_t::strict));
  }

  const Json& root_;
  const std::string prefix_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::map<std::string, std::string> refs_;
  int depth_ = 0, objects_ = 0;
  size_t pending_ = 0;
};

template <class Json>
std::string compile(const Json& schema, const std::string& prefix = "", bool common = true) {
  try {
    return Compiler<Json>(schema, prefix).run(common);
  } catch (const nlohmann::json::exception& e) {
    throw SchemaError("", std::string("the schema cannot be used: ") + e.what());
  }
}

}  // namespace

std::string json_schema_grammar(const nlohmann::json& schema) { return compile(schema); }
std::string json_schema_grammar(const nlohmann::ordered_json& schema) { return compile(schema); }

std::string json_schema_rules(const nlohmann::ordered_json& schema, const std::string& prefix) {
  for (char c : prefix)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) throw SchemaError("", "rule prefix '" + prefix + "' is not a rule name");
  return compile(schema, prefix, false);
}
std::string json_common_rules() { return kCommon; }

std::string json_object_grammar() { return std::string("root ::= json-object\n") + kCommon; }

}  // namespace moemesh::grammar
