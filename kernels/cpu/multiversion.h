// Loops the compiler vectorises well get AVX-512 and AVX2 clones, picked at load
// time by the CPU (GCC function multiversioning); the default clone runs anywhere.
#pragma once

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define MOEMESH_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOEMESH_MULTIVERSION
#endif
