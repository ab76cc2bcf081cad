// Run-time choice between the integer block kernels and the reference path for quantized weights.
#include <algorithm>
#include <vector>

#include "slm/backend/cpu/matmul_quant.hpp"
#include "slm/backend/cpu/matmul_quant_kernels.hpp"
#include "slm/util/error.hpp"

namespace slm::cpu {
namespace {

bool has_avx512_bw_vl() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

}  // namespace

bool matmul_quant_has_simd(DType w_type) {
  static const bool avx512 = has_avx512_bw_vl();
  return avx512 && kernels::quant_avx512_handles(w_type);
}

void matmul_quant(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens,
                  float* y) {
  if (!matmul_quant_has_simd(w_type) || n_out <= 0 || n_in <= 0 || n_tokens <= 0 || w == nullptr ||
      x == nullptr || y == nullptr) {
    matmul_quant_ref(w_type, w, n_out, n_in, x, n_tokens, y);  // its checks and errors for edge cases
    return;
  }
  quantized_row_bytes(w_type, n_in);  // checks n_in against the block size
  const int64_t n_blocks = n_in / 32;
  std::vector<int8_t> qx(size_t(n_tokens * n_in));
  std::vector<float> dx(size_t(2 * n_tokens * n_blocks));  // scales and scaled sums per block
  kernels::matmul_quant_avx512(w_type, static_cast<const uint8_t*>(w), n_out, n_in, x, n_tokens, y, qx.data(),
                               dx.data());
}

}  // namespace slm::cpu
