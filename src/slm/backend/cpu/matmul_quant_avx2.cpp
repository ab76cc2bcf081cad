// The integer block kernels (matmul_quant_impl.hpp) built for AVX2 + FMA + F16C: 16 vector
// registers hold tiles of 2 weight rows x 4 tokens (generation) or 2 rows x 16 tokens (prompts).
#define SLM_QUANT_VNNI 0
#define SLM_QUANT_ROWS 2
#define SLM_QUANT_COLS 4
#define SLM_QUANT_GEMM_ROWS 2
#define SLM_QUANT_GEMM_GROUPS 2
#include "slm/backend/cpu/matmul_quant_impl.hpp"
#include "slm/backend/cpu/matmul_quant_kernels.hpp"

namespace slm::cpu::kernels {

void matmul_quant_avx2(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                       int64_t n_tokens, float* y) {
  matmul_quant_impl(w_type, w, n_out, n_in, x, n_tokens, y);
}

}  // namespace slm::cpu::kernels
