// The per-instruction-set kernels behind matmul.hpp. matmul.cpp checks the arguments, picks a path
// at run time and owns the scratch memory; each path lives in its own file, compiled for its
// instruction set (matmul_avx2.cpp, matmul_avx512.cpp) or for the baseline (matmul_scalar.cpp).
//
// This header holds declarations and plain data only: no inline functions, so that no code compiled
// for a wider instruction set can be shared with (and picked by the linker for) baseline code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slm::cpu::kernels {

enum class WeightType { f32, f16, bf16 };

struct MatmulTask {
  WeightType w_type;
  const void* w;  // [n_out][n_in], rows contiguous
  int64_t n_out;
  int64_t n_in;  // > 0
  const float* x;  // [n_tokens][n_in]
  int64_t n_tokens;
  float* y;  // [n_tokens][n_out]
  float* scratch;  // at least scratch_floats_<path>(...) floats, 64-byte aligned
  int n_threads;  // the most threads the path may use (>= 1)
};

// Floats of scratch memory a path needs for a task of these sizes.
size_t scratch_floats_scalar(int64_t n_out, int64_t n_in, int64_t n_tokens, int n_threads);
size_t scratch_floats_avx2(int64_t n_out, int64_t n_in, int64_t n_tokens, int n_threads);
size_t scratch_floats_avx512(int64_t n_out, int64_t n_in, int64_t n_tokens, int n_threads);

void matmul_scalar(const MatmulTask& task);
void matmul_avx2(const MatmulTask& task);
void matmul_avx512(const MatmulTask& task);

void to_f32_scalar(WeightType type, const void* src, float* dst, int64_t n);
void to_f32_avx2(WeightType type, const void* src, float* dst, int64_t n);
void to_f32_avx512(WeightType type, const void* src, float* dst, int64_t n);

// Sum of n floats read once, front to back (the inner loop of the bandwidth measurement).
float stream_sum_scalar(const float* data, size_t n);
float stream_sum_avx2(const float* data, size_t n);
float stream_sum_avx512(const float* data, size_t n);

}  // namespace slm::cpu::kernels
