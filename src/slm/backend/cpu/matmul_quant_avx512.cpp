// Q8_0 and Q4_0 weights times activations rounded to 8-bit blocks, with AVX-512BW/VL.
//
// Per block of 32 the product is integer: the weight bytes w (signed) and activation bytes a
// (signed, |a| <= 127). vpmaddubsw multiplies unsigned by signed bytes, so it gets |w| and a with
// the sign of w moved onto it (vpsignb): |w| * sign(w) a = w a. Pair sums reach at most
// 2 * 128 * 127 = 32512, below the int16 limit, so nothing saturates even for a weight byte of
// -128. vpmaddwd with ones widens to eight int32 sums, which are converted to f32 and accumulated
// with the product of the two block scales. (VNNI vpdpbusd would fuse the two multiplies but is not
// in the baseline flags of *_avx512.cpp files; the kernel is bound by memory bandwidth anyway.)
// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which it then reports
// as maybe-uninitialized; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "slm/backend/cpu/matmul_quant_kernels.hpp"

namespace slm::cpu::kernels {
namespace {

constexpr int64_t kBlock = 32;
constexpr int64_t kRowsPerStep = 4;

// Rounds n values (a multiple of 32) to int8 blocks: d = max|x| / 127, q = round(x / d).
void quantize_activations(const float* x, int64_t n, int8_t* q, float* d) {
  const __m512 sign_mask = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * kBlock);
    const __m512 v1 = _mm512_loadu_ps(x + b * kBlock + 16);
    const __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign_mask, v0), _mm512_andnot_ps(sign_mask, v1));
    const __m256 m8 = _mm256_max_ps(_mm512_castps512_ps256(m), _mm512_extractf32x8_ps(m, 1));
    const __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    const float amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps(m2, m2, 1)));
    const float scale = amax / 127.0f;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b] = scale;
    const __m512 vi = _mm512_set1_ps(inv);
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vi));  // round to nearest
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock), _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock + 16), _mm512_cvtsepi32_epi8(i1));
  }
}

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Eight int32 partial sums of w * a over one block of 32 signed bytes each.
inline __m256i block_dot(__m256i w, __m256i a) {
  const __m256i abs_w = _mm256_sign_epi8(w, w);
  const __m256i signed_a = _mm256_sign_epi8(a, w);
  const __m256i pairs = _mm256_maddubs_epi16(abs_w, signed_a);
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

// The f16 block scale, converted by the F16C instruction.
inline float f16_scale(const uint8_t* blk) { return _cvtsh_ss(uint16_t(blk[0] | (blk[1] << 8))); }

struct Q8_0 {
  static constexpr int64_t kBytes = 34;
  static float scale(const uint8_t* blk) { return f16_scale(blk); }
  static __m256i values(const uint8_t* blk) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)); }
};

struct Q4_0 {
  static constexpr int64_t kBytes = 18;
  static float scale(const uint8_t* blk) { return f16_scale(blk); }
  // Elements 0..15 are the low nibbles, 16..31 the high nibbles; each minus 8.
  static __m256i values(const uint8_t* blk) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m128i low = _mm_and_si128(packed, _mm_set1_epi8(15));
    const __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(15));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1);
    return _mm256_sub_epi8(both, _mm256_set1_epi8(8));
  }
};

// Rows [first, first + count) for every token; count <= kRowsPerStep.
template <typename F>
void rows_step(const uint8_t* w, size_t row_bytes, int64_t first, int64_t count, int64_t n_out, int64_t n_in,
               int64_t n_tokens, const int8_t* qx, const float* dx, float* y) {
  const int64_t n_blocks = n_in / kBlock;
  const uint8_t* rows[kRowsPerStep];
  for (int64_t r = 0; r < kRowsPerStep; ++r) rows[r] = w + size_t(first + std::min(r, count - 1)) * row_bytes;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int8_t* qa = qx + t * n_in;
    const float* da = dx + t * n_blocks;
    __m256 acc[kRowsPerStep];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + b * kBlock));
      const float d_a = da[b];
      for (int64_t r = 0; r < kRowsPerStep; ++r) {
        const uint8_t* blk = rows[r] + b * F::kBytes;
        const __m256 sums = _mm256_cvtepi32_ps(block_dot(F::values(blk), a));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(F::scale(blk) * d_a), sums, acc[r]);
      }
    }
    for (int64_t r = 0; r < count; ++r) y[t * n_out + first + r] = hsum(acc[r]);
  }
}

template <typename F>
void run(const uint8_t* w, int64_t n_out, int64_t n_in, int64_t n_tokens, const int8_t* qx, const float* dx,
         float* y) {
  const size_t row_bytes = size_t(n_in / kBlock) * F::kBytes;
  const int64_t n_steps = (n_out + kRowsPerStep - 1) / kRowsPerStep;
  // Static schedule: each thread streams one contiguous range of rows.
#pragma omp parallel for schedule(static) if (n_steps > 1)
  for (int64_t s = 0; s < n_steps; ++s) {
    const int64_t first = s * kRowsPerStep;
    rows_step<F>(w, row_bytes, first, std::min(kRowsPerStep, n_out - first), n_out, n_in, n_tokens, qx, dx, y);
  }
}

}  // namespace

bool quant_avx512_handles(DType w_type) { return w_type == DType::Q8_0 || w_type == DType::Q4_0; }

void matmul_quant_avx512(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                         int64_t n_tokens, float* y, int8_t* qx, float* dx) {
  for (int64_t t = 0; t < n_tokens; ++t) quantize_activations(x + t * n_in, n_in, qx + t * n_in, dx + t * (n_in / kBlock));
  if (w_type == DType::Q8_0) {
    run<Q8_0>(w, n_out, n_in, n_tokens, qx, dx, y);
  } else {
    run<Q4_0>(w, n_out, n_in, n_tokens, qx, dx, y);
  }
}

}  // namespace slm::cpu::kernels
