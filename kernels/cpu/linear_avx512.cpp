// The linear kernels for AVX-512 (and AVX512_BF16 where the CPU has it).
// Compiled with those flags; only called after cpu_features() has confirmed them.
#include "kernels/cpu/linear_direct.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/linear_packed.h"
#include "kernels/cpu/linear_transposed.h"
#include "kernels/cpu/simd/avx512.h"

namespace moemesh::cpu::detail {

const LinearKernels& avx512_kernels() {
  static const LinearKernels k{"avx512", direct_rows<simd::Avx512>, blocked_rows<simd::Avx512>, packed_rows<simd::Avx512>,
                               cpu_features().avx512_bf16 ? packed_rows_bf16<simd::Avx512> : nullptr,
                               transposed_rows<simd::Avx512>, 2 * simd::Avx512::kLanes};
  return k;
}

}  // namespace moemesh::cpu::detail
