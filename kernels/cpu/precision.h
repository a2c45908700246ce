// How much rounding the products may add: a named setting of the engine, eval,
// bench and the cluster config (`--compute exact|fast`).
#pragma once

#include <optional>
#include <string_view>

namespace moemesh::cpu {

enum class Precision {
  Exact,  // activations stay f32 in every product (the equivalence and strict tests)
  Fast,   // activations may be rounded to bf16 where the CPU has bf16 dot products
};

inline const char* precision_name(Precision p) { return p == Precision::Exact ? "exact" : "fast"; }
inline std::optional<Precision> precision_from_name(std::string_view s) {
  if (s == "exact") return Precision::Exact;
  if (s == "fast") return Precision::Fast;
  return std::nullopt;
}

}  // namespace moemesh::cpu
