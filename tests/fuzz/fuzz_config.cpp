// libFuzzer target: config.json parsing and validation on arbitrary text.
#include <nlohmann/json.hpp>

#include "core/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    const moemesh::ModelConfig c = moemesh::ModelConfig::from_json(j);
    // What is accepted survives a round trip.
    if (moemesh::ModelConfig::from_json(c.to_json()).to_json() != c.to_json()) __builtin_trap();
  } catch (const moemesh::ConfigError&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
