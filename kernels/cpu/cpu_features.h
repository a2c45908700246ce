// Which vector instruction sets the kernels use on this CPU.
#pragma once

#include <string>

namespace moemesh::cpu {

// The kernel families, from the plain loops to the widest vectors.
enum class KernelIsa { Generic, Avx2, Avx512 };

struct CpuFeatures {
  bool avx2 = false;         // AVX2 + FMA + F16C, with the OS saving YMM state
  bool avx512 = false;       // AVX-512 F/BW/VL/DQ, with the OS saving ZMM state
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps)
};

// What the CPU and the OS support (cpuid and xgetbv), read once.
const CpuFeatures& cpu_features();

// The family the kernels use: the widest the CPU has, capped by the environment
// variable MOEMESH_KERNELS=generic|avx2|avx512 (for tests and comparisons).
KernelIsa kernel_isa();
// Whether bf16 dot products (vdpbf16ps) are used where the precision allows it.
bool kernels_have_bf16_dot();
// MOEMESH_KERNELS=avx2-bf16-emulated: AVX2 with the bf16 dot product emulated, so
// that `--compute fast` rounds as it does on AVX512_BF16 CPUs (for tests).
bool kernels_emulate_bf16_dot();

const char* kernel_isa_name(KernelIsa isa);
// A line for logs and benchmarks: "avx2" or "avx512+bf16" and so on.
std::string kernel_description();

}  // namespace moemesh::cpu
