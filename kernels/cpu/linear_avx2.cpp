// The linear kernels for AVX2 + FMA + F16C. Compiled with those flags; only
// called after cpu_features() has confirmed them.
#include "kernels/cpu/linear_direct.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/linear_packed.h"
#include "kernels/cpu/linear_transposed.h"
#include "kernels/cpu/simd/avx2.h"

namespace moemesh::cpu::detail {

const LinearKernels& avx2_kernels() {
  static const LinearKernels k{"avx2", direct_rows<simd::Avx2>, blocked_rows<simd::Avx2>, packed_rows<simd::Avx2>, nullptr,
                               transposed_rows<simd::Avx2>, 2 * simd::Avx2::kLanes};
  return k;
}

const LinearKernels& avx2_bf16_emulated_kernels() {
  static const LinearKernels k{"avx2-bf16-emulated", direct_rows<simd::Avx2>, blocked_rows<simd::Avx2>, packed_rows<simd::Avx2>,
                               packed_rows_bf16<simd::Avx2>, transposed_rows<simd::Avx2>, 2 * simd::Avx2::kLanes};
  return k;
}

}  // namespace moemesh::cpu::detail
