#include "kernels/cpu/convert.h"

#include "core/dtype.h"
#include "kernels/cpu/cpu_features.h"

namespace moemesh::cpu {

void dequantize_fp8(const uint8_t* src, int64_t n, float scale, float* dst) {
  if (kernel_isa() != KernelIsa::Generic) return detail::dequantize_fp8_avx2(src, n, scale, dst);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp8e4m3_to_f32(src[i]) * scale;
}

}  // namespace moemesh::cpu
