// A libFuzzer mutation for JSON text. Byte-level mutations of JSON mostly make
// syntax errors, so the field checks behind the parser are rarely reached with
// a value of the wrong type; this mutation changes one value of a parsed
// document (another type, a limit's edge, removed or repeated) and writes it back.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "services/gateway/openai_api.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace moemesh::fuzz {

inline void collect_values(nlohmann::json& j, std::vector<nlohmann::json*>& out) {
  out.push_back(&j);
  if (j.is_structured())
    for (auto& v : j) collect_values(v, out);
}

inline nlohmann::json other_value(std::mt19937& rng, const nlohmann::json& old) {
  switch (rng() % 14) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng() % 5) - 1;
    case 3: return std::numeric_limits<int64_t>::min();
    case 4: return std::numeric_limits<uint64_t>::max();
    case 5: return 4097;  // past the max_tokens limit
    case 6: return (rng() % 2 ? -1.0 : 1.0) * std::ldexp(1.0, static_cast<int>(rng() % 2100) - 1050);
    case 7: return "";
    case 8: return std::string(1 + rng() % 200, 'x');
    case 9: return nlohmann::json::array();
    case 10: return nlohmann::json::object();
    case 11: return nlohmann::json::array({old});
    case 12: return nlohmann::json{{"type", "text"}, {"text", old}};
    default: return nlohmann::json{{"role", "user"}, {"content", old}};
  }
}

// The document with one value changed; nullopt when `text` is not request JSON.
inline std::optional<std::string> mutate_json(const std::string& text, std::mt19937& rng) {
  nlohmann::json doc;
  try {
    doc = parse_request_json(text);  // nested as deep as the gateway takes, no deeper: the walk recurses
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::vector<nlohmann::json*> values;
  collect_values(doc, values);
  nlohmann::json& v = *values[rng() % values.size()];
  if (v.is_object() && !v.empty() && rng() % 3 == 0) {
    auto it = v.begin();
    std::advance(it, rng() % v.size());
    v.erase(it);  // a field absent
  } else if (v.is_array() && !v.empty() && rng() % 3 == 0) {
    const nlohmann::json x = v[rng() % v.size()];
    for (size_t n = 1 + rng() % 300; n > 0; --n) v.push_back(x);  // past a count limit
  } else {
    v = other_value(rng, v);
  }
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Writes `out` back into libFuzzer's buffer; 0 when it does not fit.
inline size_t emit(const std::string& out, uint8_t* data, size_t max_size) {
  if (out.empty() || out.size() > max_size) return 0;
  std::copy(out.begin(), out.end(), data);
  return out.size();
}

}  // namespace moemesh::fuzz
