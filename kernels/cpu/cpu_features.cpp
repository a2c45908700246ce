#include "kernels/cpu/cpu_features.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

namespace moemesh::cpu {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
  if (!osxsave) return f;
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const bool ymm_state = (lo & 0x6) == 0x6;     // SSE and AVX state
  const bool zmm_state = (lo & 0xe6) == 0xe6;   // plus opmask and both ZMM halves
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5);
  f.avx2 = avx2 && fma && f16c && ymm_state;
  const unsigned need512 = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);  // F, DQ, BW, VL
  f.avx512 = f.avx2 && zmm_state && (b & need512) == need512;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  if (f.avx512 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = a1 & (1u << 5);
#endif
  return f;
}

KernelIsa choose() {
  const CpuFeatures& f = cpu_features();
  KernelIsa best = f.avx512 ? KernelIsa::Avx512 : f.avx2 ? KernelIsa::Avx2 : KernelIsa::Generic;
  const char* cap = std::getenv("MOEMESH_KERNELS");
  if (!cap) return best;
  KernelIsa want = best;
  if (std::strcmp(cap, "generic") == 0) want = KernelIsa::Generic;
  else if (std::strcmp(cap, "avx2") == 0 || std::strcmp(cap, "avx2-bf16-emulated") == 0) want = KernelIsa::Avx2;
  else if (std::strcmp(cap, "avx512") == 0) want = KernelIsa::Avx512;
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

KernelIsa kernel_isa() {
  static const KernelIsa isa = choose();
  return isa;
}

bool kernels_emulate_bf16_dot() {
  static const bool emulate = [] {
    const char* cap = std::getenv("MOEMESH_KERNELS");
    return cap && std::strcmp(cap, "avx2-bf16-emulated") == 0 && kernel_isa() == KernelIsa::Avx2;
  }();
  return emulate;
}

bool kernels_have_bf16_dot() {
  return (kernel_isa() == KernelIsa::Avx512 && cpu_features().avx512_bf16) || kernels_emulate_bf16_dot();
}

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::Generic: return "generic";
    case KernelIsa::Avx2: return "avx2";
    case KernelIsa::Avx512: return "avx512";
  }
  return "?";
}

std::string kernel_description() {
  std::string s = kernel_isa_name(kernel_isa());
  if (kernels_emulate_bf16_dot()) s += "+bf16-emulated";
  else if (kernels_have_bf16_dot()) s += "+bf16";
  return s;
}

}  // namespace moemesh::cpu
