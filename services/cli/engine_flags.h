// The engine's numeric settings as command-line flags, shared by eval, bench and
// generate: --compute exact|fast, --kv-cache-dtype f32|bf16|fp8 (and --mla).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "model/engine.h"

namespace moemesh::cli {

struct EngineFlags {
  std::string compute = "fast", kv_dtype = "bf16", mla = "auto";
  EngineOptions options() const {
    EngineOptions o;
    o.compute = *cpu::precision_from_name(compute);
    o.kv_dtype = *kv_cache_dtype_from_name(kv_dtype);
    o.mla_mode = mla == "naive" ? MlaMode::Naive : mla == "absorbed" ? MlaMode::Absorbed : MlaMode::Auto;
    return o;
  }
};

inline void add_engine_flags(CLI::App& cmd, EngineFlags& f, bool mla) {
  cmd.add_option("--compute", f.compute,
                 "exact: f32 activations in every product; fast: activations may be rounded to bf16 where the CPU "
                 "has bf16 dot products")
      ->check(CLI::IsMember({"exact", "fast"}))
      ->capture_default_str();
  cmd.add_option("--kv-cache-dtype", f.kv_dtype, "latent KV cache: f32, bf16, or fp8 (e4m3, a scale per token and part)")
      ->check(CLI::IsMember({"f32", "bf16", "fp8"}))
      ->capture_default_str();
  if (mla)
    cmd.add_option("--mla", f.mla, "attention form: auto (naive for prefill chunks), naive, absorbed")
        ->check(CLI::IsMember({"auto", "naive", "absorbed"}))
        ->capture_default_str();
}

}  // namespace moemesh::cli
