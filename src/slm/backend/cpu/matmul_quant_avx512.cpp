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

// Rounds n values (a multiple of 32) to int8 blocks: d = max|x| / 127, q = round(x / d); sums[b]
// = d * (sum of the block's q), for the minimums / offsets of the K formats.
void quantize_activations(const float* x, int64_t n, int8_t* q, float* d, float* sums) {
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
    sums[b] = scale * float(_mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1)));
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
  const size_t ahead = size_t(kRowsPerStep) * row_bytes;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const bool prefetch = t == 0 && first + 2 * kRowsPerStep <= n_out;
    const int8_t* qa = qx + t * n_in;
    const float* da = dx + t * 2 * n_blocks;
    __m256 acc[kRowsPerStep];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + b * kBlock));
      const float d_a = da[b];
      for (int64_t r = 0; r < kRowsPerStep; ++r) {
        const uint8_t* blk = rows[r] + b * F::kBytes;
        // Rows are short streams that the hardware prefetcher hardly learns: fetch the same
        // place of the next step's rows (only while those rows exist).
        if (prefetch) _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
        const __m256 sums = _mm256_cvtepi32_ps(block_dot(F::values(blk), a));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(F::scale(blk) * d_a), sums, acc[r]);
      }
    }
    for (int64_t r = 0; r < count; ++r) y[t * n_out + first + r] = hsum(acc[r]);
  }
}

// Q4_K: super-blocks of 256 (8 sub-blocks of 32) with 6-bit scales and mins. Weights are
// D * sc * q - M * m with q in 0..15, so the product of a sub-block is D * sc * (q . a) - M * m *
// (sum of a); q is unsigned, so vpmaddubsw takes it as it is.
struct Q4_K {
  static constexpr int64_t kBytes = 144;
  static void scale_min(const uint8_t* packed, int s, int* scale, int* min) {
    if (s < 4) {
      *scale = packed[s] & 63;
      *min = packed[s + 4] & 63;
    } else {
      *scale = (packed[s + 4] & 15) | ((packed[s - 4] >> 6) << 4);
      *min = (packed[s + 4] >> 4) | ((packed[s] >> 6) << 4);
    }
  }
  // Adds the super-block's product to acc (scaled sums) and its minimum term to corr.
  static void super_block(const uint8_t* blk, const int8_t* qa, const float* da, const float* sa, __m256& acc,
                          float& corr) {
    const float d = f16_scale(blk), dmin = f16_scale(blk + 2);
    const uint8_t* scales = blk + 4;
    const uint8_t* qs = blk + 16;
    const __m256i low4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
      const __m256i q[2] = {_mm256_and_si256(packed, low4), _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4)};
      for (int h = 0; h < 2; ++h) {
        const int s = 2 * c + h;
        int sc, m;
        scale_min(scales, s, &sc, &m);
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + 32 * s));
        const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(q[h], a), ones);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d * float(sc) * da[s]), _mm256_cvtepi32_ps(sums), acc);
        corr += dmin * float(m) * sa[s];
      }
    }
  }
};

// Q6_K: super-blocks of 256 with a signed 8-bit scale per 16 elements; q = 6 bits - 32, taken as
// |q| and the sign moved onto the activations as for Q8_0; vpmaddwd applies the two scales of a
// 32-element block (one per 16-byte half).
struct Q6_K {
  static constexpr int64_t kBytes = 210;
  static void super_block(const uint8_t* blk, const int8_t* qa, const float* da, const float*, __m256& acc,
                          float&) {
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(blk + 192);
    const float d = f16_scale(blk + 208);
    const __m256i low4 = _mm256_set1_epi8(15), low2 = _mm256_set1_epi8(3), offset = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; ++h) {
      const __m256i high_bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
      for (int k = 0; k < 4; ++k) {
        const __m256i lows = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32 * (k & 1)));
        const __m256i low = k < 2 ? _mm256_and_si256(lows, low4) : _mm256_and_si256(_mm256_srli_epi16(lows, 4), low4);
        const __m256i high =
            _mm256_and_si256(_mm256_srl_epi16(high_bits, _mm_cvtsi32_si128(2 * k)), low2);
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), offset);
        const int s = 4 * h + k;  // 32-element block within the super-block
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa + 32 * s));
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q));
        const __m256i sc = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(scales[2 * s])),
                                                   _mm_set1_epi16(scales[2 * s + 1]), 1);
        const __m256i sums = _mm256_madd_epi16(pairs, sc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d * da[s]), _mm256_cvtepi32_ps(sums), acc);
      }
    }
  }
};

// Rows [first, first + count) of a K format for every token; count <= kRowsPerStep.
template <typename F>
void rows_step_k(const uint8_t* w, size_t row_bytes, int64_t first, int64_t count, int64_t n_out, int64_t n_in,
                 int64_t n_tokens, const int8_t* qx, const float* dx, float* y) {
  const int64_t n_blocks = n_in / kBlock, n_super = n_in / 256;
  const uint8_t* rows[kRowsPerStep];
  for (int64_t r = 0; r < kRowsPerStep; ++r) rows[r] = w + size_t(first + std::min(r, count - 1)) * row_bytes;
  const size_t ahead = size_t(kRowsPerStep) * row_bytes;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const bool prefetch = t == 0 && first + 2 * kRowsPerStep <= n_out;
    const int8_t* qa = qx + t * n_in;
    const float* da = dx + t * 2 * n_blocks;
    const float* sa = da + n_blocks;
    __m256 acc[kRowsPerStep];
    float corr[kRowsPerStep] = {0, 0, 0, 0};
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < n_super; ++sb) {
      for (int64_t r = 0; r < kRowsPerStep; ++r) {
        if (prefetch) {  // as in rows_step: the same place of the next step's rows
          const uint8_t* next = rows[r] + sb * F::kBytes + ahead;
          for (int64_t off = 0; off < F::kBytes; off += 64) {
            _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T0);
          }
        }
        F::super_block(rows[r] + sb * F::kBytes, qa + sb * 256, da + sb * 8, sa + sb * 8, acc[r], corr[r]);
      }
    }
    for (int64_t r = 0; r < count; ++r) y[t * n_out + first + r] = hsum(acc[r]) - corr[r];
  }
}

template <typename F, bool kSuper>
void run(const uint8_t* w, int64_t n_out, int64_t n_in, int64_t n_tokens, const int8_t* qx, const float* dx,
         float* y) {
  const size_t row_bytes = size_t(n_in / (kSuper ? 256 : kBlock)) * F::kBytes;
  const int64_t n_steps = (n_out + kRowsPerStep - 1) / kRowsPerStep;
  // Static schedule: each thread streams one contiguous range of rows.
#pragma omp parallel for schedule(static) if (n_steps > 1)
  for (int64_t s = 0; s < n_steps; ++s) {
    const int64_t first = s * kRowsPerStep;
    if constexpr (kSuper) {
      rows_step_k<F>(w, row_bytes, first, std::min(kRowsPerStep, n_out - first), n_out, n_in, n_tokens, qx, dx, y);
    } else {
      rows_step<F>(w, row_bytes, first, std::min(kRowsPerStep, n_out - first), n_out, n_in, n_tokens, qx, dx, y);
    }
  }
}

}  // namespace

bool quant_avx512_handles(DType w_type) {
  return w_type == DType::Q8_0 || w_type == DType::Q4_0 || w_type == DType::Q4_K || w_type == DType::Q6_K;
}

void matmul_quant_avx512(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                         int64_t n_tokens, float* y, int8_t* qx, float* dx) {
  const int64_t n_blocks = n_in / kBlock;
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* d = dx + t * 2 * n_blocks;
    quantize_activations(x + t * n_in, n_in, qx + t * n_in, d, d + n_blocks);
  }
  switch (w_type) {
    case DType::Q8_0:
      run<Q8_0, false>(w, n_out, n_in, n_tokens, qx, dx, y);
      break;
    case DType::Q4_0:
      run<Q4_0, false>(w, n_out, n_in, n_tokens, qx, dx, y);
      break;
    case DType::Q4_K:
      run<Q4_K, true>(w, n_out, n_in, n_tokens, qx, dx, y);
      break;
    default:
      run<Q6_K, true>(w, n_out, n_in, n_tokens, qx, dx, y);
      break;
  }
}

}  // namespace slm::cpu::kernels
