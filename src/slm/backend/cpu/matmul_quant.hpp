// Weights in GGUF block formats (Q4_0 .. Q8_0, Q2_K .. Q8_K, IQ4_NL, IQ4_XS) on the CPU. matmul()
// and to_f32() (matmul.hpp) send block-quantized types here.
#pragma once

#include <cstdint>
#include <vector>

#include "slm/format/dtype.hpp"
#include "slm/format/quant.hpp"

namespace slm::cpu {

// y[t][o] = sum_i w[o][i] * x[t][i]; w: n_out rows of n_in elements of a block format (n_in a
// multiple of its block size), rows contiguous. A correct, simple path: dequantizes tiles of weight
// rows to f32 and multiplies them; OpenMP threads over tiles of rows.
void matmul_quant_ref(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens,
                      float* y);

// The ways matmul_quant can take. The integer paths round the activations to 8 bits per block of 32
// (error per output at most sum over blocks of max|x_block| / 254 * sum|w_block|) and take integer
// block products; they handle Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and
// IQ4_XS weights. avx2: AVX2 + FMA + F16C; avx512: AVX-512F/BW/VL; avx512_vnni: plus AVX512-VNNI.
enum class QuantPath { reference, avx2, avx512, avx512_vnni };
const char* quant_path_name(QuantPath path);
// The paths this machine supports, reference first, fastest last.
std::vector<QuantPath> quant_paths();
// True when path (an integer one) handles w_type and the machine supports the path.
bool quant_path_handles(QuantPath path, DType w_type);

// The product through the fastest path for w_type on this machine (the reference path where no
// integer path handles it).
void matmul_quant(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens,
                  float* y);
// The product through a given path (tests, benchmarks); throws when the machine lacks it or it does
// not handle w_type.
void matmul_quant_path(QuantPath path, DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x,
                       int64_t n_tokens, float* y);
// True when matmul_quant takes an integer kernel for w_type on this machine.
bool matmul_quant_has_simd(DType w_type);

}  // namespace slm::cpu
