// The integer block kernels (matmul_quant_impl.hpp) built for AVX-512 with VNNI: as the AVX-512
// build, with each block product a single vpdpbusd.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define SLM_QUANT_VNNI 1
#define SLM_QUANT_ROWS 4
#define SLM_QUANT_COLS 4
#define SLM_QUANT_GEMM_ROWS 4
#define SLM_QUANT_GEMM_GROUPS 2
#include "slm/backend/cpu/matmul_quant_impl.hpp"
#include "slm/backend/cpu/matmul_quant_kernels.hpp"

namespace slm::cpu::kernels {

void matmul_quant_avx512vnni(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                             int64_t n_tokens, float* y) {
  matmul_quant_impl(w_type, w, n_out, n_in, x, n_tokens, y);
}

}  // namespace slm::cpu::kernels
