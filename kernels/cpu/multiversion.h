// Loops the compiler vectorises well get AVX-512 and AVX2 clones, picked at load
// time by the CPU (GCC function multiversioning); the default clone runs anywhere.
#pragma once

// Not under sanitizers: the clones' ifunc resolvers run during relocation, before
// the sanitizer runtime is up, and crash when instrumented.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define MOEMESH_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOEMESH_MULTIVERSION
#endif
