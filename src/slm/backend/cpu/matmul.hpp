// Matrix products of weights with activations on the CPU: the operation that dominates both
// prompt processing (many tokens) and generation (one token, a matrix-vector product).
#pragma once

#include <cstdint>

#include "slm/format/dtype.hpp"

namespace slm::cpu {

enum class Isa { scalar, avx2, avx512 };

Isa detect_isa();                 // the best path this machine supports
const char* isa_name(Isa isa);

// y[t][o] = sum_i w[o][i] * x[t][i] for t < n_tokens, o < n_out.
// w: row-major [n_out][n_in] of w_type (F32, F16, BF16; later quantized types), rows contiguous.
// x: f32 [n_tokens][n_in]; y: f32 [n_tokens][n_out]. Threads: OpenMP, inside.
void matmul(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens, float* y);
// The same on a chosen path (tests compare every path the machine has with the scalar one).
void matmul_isa(Isa isa, DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x,
                int64_t n_tokens, float* y);

// Checks matmul's arguments (Error(invalid_argument) naming what is wrong) and does the empty cases
// (no outputs; n_in == 0 zero-fills y); false when nothing is left to compute.
bool matmul_check_args(const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens, float* y);

// Converts n elements of row data of `type` into f32 (embedding look-ups, conversions).
void to_f32(DType type, const void* src, float* dst, int64_t n);

// Streaming read bandwidth of this machine in bytes/s, with the OpenMP threads in use.
double measure_read_bandwidth(size_t bytes = size_t(1) << 30, int repeats = 3);

}  // namespace slm::cpu
