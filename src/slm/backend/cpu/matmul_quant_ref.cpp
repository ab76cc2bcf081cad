// The reference matrix product for block-quantized weights: each thread dequantizes a tile of
// weight rows into f32 once, then takes the dot products of those rows with every token.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "slm/backend/cpu/matmul_quant.hpp"
#include "slm/backend/cpu/matmul.hpp"
#include "slm/util/error.hpp"

namespace slm::cpu {
namespace {

constexpr int64_t kTileRows = 8;

// Dot product in f32 with 8 partial sums (vectorizes on the baseline instruction set).
float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

void matmul_quant_ref(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens,
                      float* y) {
  if (!is_block_quantized(w_type)) {
    fail(ErrorKind::internal, "matmul_quant_ref: expected a block-quantized weight type, found {}", dtype_name(w_type));
  }
  if (!matmul_check_args(w, n_out, n_in, x, n_tokens, y)) return;
  const size_t row_bytes = quantized_row_bytes(w_type, n_in);  // checks n_in against the block size
  const auto* rows = static_cast<const uint8_t*>(w);
  const int64_t n_tiles = (n_out + kTileRows - 1) / kTileRows;

  // Scratch for every thread, allocated before the parallel region (nothing in it may throw).
  const int n_threads = std::max(1, omp_get_max_threads());
  std::vector<float> scratch(size_t(n_threads) * size_t(kTileRows * n_in));

#pragma omp parallel num_threads(n_threads)
  {
    float* tile = scratch.data() + size_t(omp_get_thread_num()) * size_t(kTileRows * n_in);
#pragma omp for schedule(dynamic, 4)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t first = t * kTileRows;
      const int64_t count = std::min(kTileRows, n_out - first);
      for (int64_t r = 0; r < count; ++r) {
        dequantize_row(w_type, rows + size_t(first + r) * row_bytes, tile + r * n_in, n_in);
      }
      for (int64_t token = 0; token < n_tokens; ++token) {
        const float* xt = x + token * n_in;
        float* yt = y + token * n_out + first;
        for (int64_t r = 0; r < count; ++r) yt[r] = dot(tile + r * n_in, xt, n_in);
      }
    }
  }
}

}  // namespace slm::cpu
