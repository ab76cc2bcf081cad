// Integer block kernels for every weight block format, written once with 256-bit integer vectors
// and compiled by each instruction-set file (matmul_quant_avx2.cpp, _avx512.cpp, _avx512vnni.cpp),
// which sets before including it:
//   SLM_QUANT_VNNI         1: block products through vpdpbusd (AVX512-VNNI with VL), 0: vpmaddubsw +
//                          vpmaddwd
//   SLM_QUANT_ROWS/COLS    few tokens: weight rows per tile, most tokens taken this way
//   SLM_QUANT_GEMM_ROWS    many tokens: weight rows per tile, and groups of 8 tokens per register tile
//   SLM_QUANT_GEMM_GROUPS
// Everything here has internal linkage: each including file gets its own copy, built for its flags.
//
// The scheme. Activations are rounded per block of 32 to int8 with one f32 scale (d_a = max|x| / 127)
// and the sums of the rounded block and of its 16-element halves. Each format's decoder turns a
// weight block into 32 int8 values per "unit" of 32 elements (in element order) plus, per 16-element
// half of the unit, a scale and a minimum, such that w = scale * q + minimum. Then per unit
//   w . x ~= sum over halves h of scale_h * d_a * (q_h . a_h) + minimum_h * d_a * (sum a_h).
// Formats whose values carry an offset (Q4_0's q - 8, Q6_K's q - 32, ...) are decoded unsigned with
// the offset moved into the minimum, so the byte products take them as they are (the unsigned
// operand of vpmaddubsw / vpdpbusd). Signed-only formats (Q8_0, IQ4_NL, IQ4_XS) take |q| and move
// the sign of q onto the activations (vpsignb), or with VNNI q + 128 (vpdpbusd adds four products
// into int32 without saturating) with -128 * scale as the minimum. Pair sums of vpmaddubsw stay
// below the int16 limit: unsigned values are at most 63 (2 * 63 * 127) and |q| at most 128
// (2 * 128 * 127 = 32512).
//
// Few tokens (at most COLS, i.e. generation): tiles of ROWS weight rows are decoded 256 elements at
// a time into a per-thread panel and used at once while in L1, with the next rows prefetched (short
// row streams that the hardware prefetcher hardly learns). A unit's products are eight int32 lanes
// (lanes 0..3 the first half) scaled lane-wise; the minimum terms are one vector product per 8 units.
// Many tokens (prompts): see tile_grouped: one token per lane, weight bytes broadcast.
// OpenMP threads take chunks of consecutive tiles as they go.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "slm/format/dtype.hpp"

#ifndef SLM_QUANT_VNNI
#error "define SLM_QUANT_VNNI, SLM_QUANT_ROWS and SLM_QUANT_COLS before including matmul_quant_impl.hpp"
#endif

namespace slm::cpu::kernels {
namespace {

constexpr int64_t kUnit = 32;
constexpr int kRows = SLM_QUANT_ROWS;
constexpr int kCols = SLM_QUANT_COLS;

// ---- helpers ----

inline float f16_at(const uint8_t* p) { return _cvtsh_ss(uint16_t(p[0] | (p[1] << 8))); }

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

inline float hmax(__m256 v) {
  const __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(t, _mm_shuffle_ps(t, t, 1)));
}

inline int hsum_i32(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1)));
}

// Eight int32 sums of u * s over groups of four bytes (u unsigned, s signed).
inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if SLM_QUANT_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// Two f32 values spread as lanes [lo x4, hi x4].
inline __m256 halves(float lo, float hi) { return _mm256_set_m128(_mm_set1_ps(hi), _mm_set1_ps(lo)); }

// Low nibbles of 16 bytes as elements 0..15, high nibbles as 16..31.
inline __m256i nibbles(const uint8_t* p) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), m), _mm_and_si128(packed, m));
}

// Byte i is 0x10 where bit i of bits is set, else 0.
inline __m256i bit4_of(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(bits)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
  const __m256i select = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select), _mm256_set1_epi8(0x10));
}

inline __m256i table_lookup(const uint8_t* p, __m128i table) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(packed, 4), m)),
                          _mm_shuffle_epi8(table, _mm_and_si128(packed, m)));
}

inline __m128i iq4_table() {
  return _mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
}

inline void store(int8_t* q, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v); }

// Scales and minimums of a unit: fields 0..3 (scale of the first half, of the second, minimum of the
// first, of the second) lie `stride` floats apart, so a row's units hold each field contiguously.
inline void set_unit(float* sc, int64_t stride, float d_lo, float d_hi, float m_lo, float m_hi) {
  sc[0] = d_lo;
  sc[stride] = d_hi;
  sc[2 * stride] = m_lo;
  sc[3 * stride] = m_hi;
}

// The same for formats with one scale and minimum per unit (fields 1 and 3 are not read).
inline void set_unit2(float* sc, int64_t stride, float d, float m) {
  sc[0] = d;
  sc[2 * stride] = m;
}

// ---- decoders: one block of the format into kElems / 32 units (values q, and per unit
// scale_lo, scale_hi, min_lo, min_hi in sc) ----

struct Q8_0 {
  static constexpr int64_t kElems = 32, kBytes = 34;
  static constexpr bool kSigned = true, kMin = false, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    store(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)));
    const float d = f16_at(b);
    set_unit2(sc, stride, d, 0);
  }
};

struct Q4_0 {
  static constexpr int64_t kElems = 32, kBytes = 18;
  static constexpr bool kSigned = false, kMin = true, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    store(q, nibbles(b + 2));
    const float d = f16_at(b);
    set_unit2(sc, stride, d, -8 * d);
  }
};

struct Q4_1 {
  static constexpr int64_t kElems = 32, kBytes = 20;
  static constexpr bool kSigned = false, kMin = true, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    store(q, nibbles(b + 4));
    const float d = f16_at(b), m = f16_at(b + 2);
    set_unit2(sc, stride, d, m);
  }
};

struct Q5_0 {
  static constexpr int64_t kElems = 32, kBytes = 22;
  static constexpr bool kSigned = false, kMin = true, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    store(q, _mm256_or_si256(nibbles(b + 6), bit4_of(qh)));
    const float d = f16_at(b);
    set_unit2(sc, stride, d, -16 * d);
  }
};

struct Q5_1 {
  static constexpr int64_t kElems = 32, kBytes = 24;
  static constexpr bool kSigned = false, kMin = true, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    store(q, _mm256_or_si256(nibbles(b + 8), bit4_of(qh)));
    const float d = f16_at(b), m = f16_at(b + 2);
    set_unit2(sc, stride, d, m);
  }
};

struct IQ4_NL {
  static constexpr int64_t kElems = 32, kBytes = 18;
  static constexpr bool kSigned = true, kMin = false, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    store(q, table_lookup(b + 2, iq4_table()));
    const float d = f16_at(b);
    set_unit2(sc, stride, d, 0);
  }
};

// 6-bit scale and min of sub-block s of Q4_K / Q5_K.
inline void k_scale_min(const uint8_t* p, int s, int* scale, int* min) {
  if (s < 4) {
    *scale = p[s] & 63;
    *min = p[s + 4] & 63;
  } else {
    *scale = (p[s + 4] & 15) | ((p[s - 4] >> 6) << 4);
    *min = (p[s + 4] >> 4) | ((p[s] >> 6) << 4);
  }
}

struct Q4_K {
  static constexpr int64_t kElems = 256, kBytes = 144;
  static constexpr bool kSigned = false, kMin = true, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const __m256i m = _mm256_set1_epi8(15);
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + 32 * c));
      store(q + 64 * c, _mm256_and_si256(packed, m));
      store(q + 64 * c + 32, _mm256_and_si256(_mm256_srli_epi16(packed, 4), m));
    }
    for (int s = 0; s < 8; ++s) {
      int scale, min;
      k_scale_min(b + 4, s, &scale, &min);
      set_unit2(sc + s, stride, d * float(scale), -dmin * float(min));
    }
  }
};

struct Q5_K {
  static constexpr int64_t kElems = 256, kBytes = 176;
  static constexpr bool kSigned = false, kMin = true, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const __m256i m = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 48 + 32 * c));
      const __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one);
      const __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one);
      store(q + 64 * c, _mm256_or_si256(_mm256_and_si256(packed, m), _mm256_slli_epi16(h0, 4)));
      store(q + 64 * c + 32,
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 4), m), _mm256_slli_epi16(h1, 4)));
    }
    for (int s = 0; s < 8; ++s) {
      int scale, min;
      k_scale_min(b + 4, s, &scale, &min);
      set_unit2(sc + s, stride, d * float(scale), -dmin * float(min));
    }
  }
};

// Q6_K: unsigned 6-bit values, offset 32 moved into the minimum; one signed scale per 16 elements.
struct Q6_K {
  static constexpr int64_t kElems = 256, kBytes = 210;
  static constexpr bool kSigned = false, kMin = true, kHalves = true;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
    const float d = f16_at(b + 208);
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
      const __m256i low0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
      const __m256i low1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
      for (int k = 0; k < 4; ++k) {
        const __m256i lows = (k & 1) ? low1 : low0;
        const __m256i low = k < 2 ? _mm256_and_si256(lows, m4) : _mm256_and_si256(_mm256_srli_epi16(lows, 4), m4);
        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(high, _mm_cvtsi32_si128(2 * k)), m2);
        store(q + 128 * h + 32 * k, _mm256_or_si256(low, _mm256_slli_epi16(hi, 4)));
      }
    }
    for (int s = 0; s < 8; ++s) {
      const float lo = d * float(scales[2 * s]), hi = d * float(scales[2 * s + 1]);
      set_unit(sc + s, stride, lo, hi, -32 * lo, -32 * hi);
    }
  }
};

// Q2_K: unsigned 2-bit values; 4-bit scale and min per 16 elements.
struct Q2_K {
  static constexpr int64_t kElems = 256, kBytes = 84;
  static constexpr bool kSigned = false, kMin = true, kHalves = true;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    const uint8_t* scales = b;
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    const __m256i m2 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + 32 * h));
      for (int k = 0; k < 4; ++k) {
        store(q + 128 * h + 32 * k, _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * k)), m2));
      }
    }
    for (int s = 0; s < 8; ++s) {
      const int lo = scales[2 * s], hi = scales[2 * s + 1];
      set_unit(sc + s, stride, d * float(lo & 15), d * float(hi & 15), -dmin * float(lo >> 4), -dmin * float(hi >> 4));
    }
  }
};

// Q3_K: 2 low bits plus a high bit (set: +4); signed q = that - 4, so unsigned with a minimum of
// -4 * scale; signed 6-bit scales per 16 elements.
struct Q3_K {
  static constexpr int64_t kElems = 256, kBytes = 110;
  static constexpr bool kSigned = false, kMin = true, kHalves = true;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    const uint8_t* packed = b + 96;
    const float d = f16_at(b + 108);
    const __m256i m2 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m256i hmask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    for (int h = 0; h < 2; ++h) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 + 32 * h));
      for (int k = 0; k < 4; ++k) {
        const int j = 4 * h + k;  // bit of hmask
        const __m256i low = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * k)), m2);
        const __m256i high = _mm256_and_si256(_mm256_slli_epi16(_mm256_srl_epi16(hmask, _mm_cvtsi32_si128(j)), 2), four);
        store(q + 32 * j, _mm256_or_si256(low, high));
      }
    }
    for (int s = 0; s < 8; ++s) {
      float v[2];
      for (int i = 0; i < 2; ++i) {
        const int e = 2 * s + i;
        const int low = e < 8 ? (packed[e] & 15) : (packed[e - 8] >> 4);
        const int high = (packed[8 + e % 4] >> (2 * (e / 4))) & 3;
        v[i] = d * float((low | (high << 4)) - 32);
      }
      set_unit(sc + s, stride, v[0], v[1], -4 * v[0], -4 * v[1]);
    }
  }
};

struct IQ4_XS {
  static constexpr int64_t kElems = 256, kBytes = 136;
  static constexpr bool kSigned = true, kMin = false, kHalves = false;
  static void decode(const uint8_t* b, int8_t* q, float* sc, int64_t stride) {
    const float d = f16_at(b);
    const int scales_h = b[2] | (b[3] << 8);
    const __m128i table = iq4_table();
    for (int s = 0; s < 8; ++s) {
      store(q + 32 * s, table_lookup(b + 8 + 16 * s, table));
      const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 15) | (((scales_h >> (2 * s)) & 3) << 4);
      const float dl = d * float(ls - 32);
      set_unit2(sc + s, stride, dl, 0);
    }
  }
};

// ---- activations ----

// Rounds n values (a multiple of 32) to int8 blocks: d[b] = max|x| / 127, q = round(x / d); s holds
// three rows of n / 32 floats: d * (sum of q) over each block, over its first half, its second half.
void quantize_activations(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  const int64_t n_units = n / kUnit;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < n_units; ++b) {
    const float* xb = x + b * kUnit;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                                   _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    const float amax = hmax(m);
    const float scale = amax / 127.0f;
    const __m256 inv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    __m256i iv[4];
    for (int i = 0; i < 4; ++i) iv[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));  // round to nearest
    // The packs work within 128-bit lanes: p8 holds groups of 4 elements in the order 0 2 4 6 1 3 5 7
    // (as dwords); the permute restores element order.
    const __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
    store(q + b * kUnit, _mm256_permutevar8x32_epi32(p8, order));
    d[b] = scale;
    const float lo = scale * float(hsum_i32(_mm256_add_epi32(iv[0], iv[1])));
    const float hi = scale * float(hsum_i32(_mm256_add_epi32(iv[2], iv[3])));
    s[b] = lo + hi;
    s[n_units + b] = lo;
    s[2 * n_units + b] = hi;
  }
}

// ---- few tokens: rows decoded 256 elements at a time ----

struct Panel {
  const int8_t* q[kRows];
  const float* sc[kRows];  // the 4 fields of every unit, n_units apart
};

struct Acts {
  const int8_t* q;  // n_tokens x n_in
  const float* d;   // n_tokens x n_units
  const float* s;   // n_tokens x 3 x n_units (see quantize_activations)
  int64_t n_in, n_units;
};

// acc[r][c] += products of units [u0, u1) of panel rows r and tokens 0..C-1, without the minimum terms.
// Each unit's eight int32 lanes are scaled lane-wise (lanes 0..3 hold the first half).
template <typename F, int C>
inline void tile_units(const Panel& p, const Acts& a, int64_t u0, int64_t u1, __m256 (&acc)[kRows][C]) {
  const int64_t f = a.n_units;
  for (int64_t u = u0; u < u1; ++u) {
    __m256i w[kRows], wabs[kRows];
    __m256 dw[kRows];
    for (int r = 0; r < kRows; ++r) {
      w[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.q[r] + u * kUnit));
      const float* sc = p.sc[r] + u;
      dw[r] = F::kHalves ? halves(sc[0], sc[f]) : _mm256_set1_ps(sc[0]);
      if constexpr (F::kSigned) wabs[r] = _mm256_sign_epi8(w[r], w[r]);
    }
    for (int c = 0; c < C; ++c) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + c * a.n_in + u * kUnit));
      const __m256 da = _mm256_set1_ps(a.d[c * a.n_units + u]);
      for (int r = 0; r < kRows; ++r) {
        __m256i isum;
        if constexpr (F::kSigned) {
          isum = dot_u8s8(wabs[r], _mm256_sign_epi8(av, w[r]));
        } else {
          isum = dot_u8s8(w[r], av);
        }
        acc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(dw[r], da), _mm256_cvtepi32_ps(isum), acc[r][c]);
      }
    }
  }
}

// acc[r][c] += the minimum terms of units [u0, u1) (at most 8): lanes are units here, and the final
// horizontal sum adds them with everything else.
template <typename F, int C>
inline void tile_minimums(const Panel& p, const Acts& a, int64_t u0, int64_t u1, __m256 (&acc)[kRows][C]) {
  if constexpr (F::kMin) {
    const int64_t f = a.n_units;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(u1 - u0)), lanes);
    for (int c = 0; c < C; ++c) {
      const float* s = a.s + 3 * c * a.n_units + u0;
      const __m256 s0 = _mm256_maskload_ps(F::kHalves ? s + f : s, mask);
      __m256 s1 = _mm256_setzero_ps();
      if constexpr (F::kHalves) s1 = _mm256_maskload_ps(s + 2 * f, mask);
      for (int r = 0; r < kRows; ++r) {
        const float* m = p.sc[r] + 2 * f + u0;
        acc[r][c] = _mm256_fmadd_ps(_mm256_maskload_ps(m, mask), s0, acc[r][c]);
        if constexpr (F::kHalves) acc[r][c] = _mm256_fmadd_ps(_mm256_maskload_ps(m + f, mask), s1, acc[r][c]);
      }
    }
  }
}

// Few tokens (C = n_tokens): decode 256 elements of each row, use them, go on.
template <typename F, int C>
void tile_streaming(const uint8_t* const* rows, bool prefetch, size_t ahead, int8_t* pq, float* psc,
                    const Acts& a, int64_t first, int64_t count, int64_t n_out, float* y) {
  constexpr int64_t kGroup = F::kElems >= 256 ? 1 : 256 / F::kElems;  // blocks per step
  constexpr int64_t kUnitsPerBlock = F::kElems / kUnit;
  const int64_t n_blocks = a.n_in / F::kElems;
  Panel p;
  for (int r = 0; r < kRows; ++r) {
    p.q[r] = pq + r * a.n_in;
    p.sc[r] = psc + r * 4 * a.n_units;
  }
  __m256 acc[kRows][C];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm256_setzero_ps();
  }
  for (int64_t b0 = 0; b0 < n_blocks; b0 += kGroup) {
    const int64_t b1 = std::min(n_blocks, b0 + kGroup);
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* src = rows[r] + b0 * F::kBytes;
      if (prefetch) {
        for (int64_t off = 0; off < (b1 - b0) * F::kBytes; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(src + ahead + off), _MM_HINT_T0);
        }
      }
      for (int64_t b = b0; b < b1; ++b) {
        F::decode(rows[r] + b * F::kBytes, pq + r * a.n_in + b * F::kElems, psc + r * 4 * a.n_units + b * kUnitsPerBlock,
                  a.n_units);
      }
    }
    tile_units<F, C>(p, a, b0 * kUnitsPerBlock, b1 * kUnitsPerBlock, acc);
    tile_minimums<F, C>(p, a, b0 * kUnitsPerBlock, b1 * kUnitsPerBlock, acc);
  }
  for (int c = 0; c < C; ++c) {
    for (int r = 0; r < count; ++r) y[c * n_out + first + r] = hsum(acc[r][c]);
  }
}

// ---- many tokens: weight rows x groups of 8 tokens, one token per lane ----
//
// The activations are laid out once per call in groups of 8 tokens: for each unit, 8 steps of 32
// bytes, step k holding bytes 4k..4k+3 of the unit for each of the 8 tokens. A weight row's 4 bytes
// at step k are broadcast to every lane, so one block product instruction adds 4 products to each
// of 8 tokens' int32 sums; after 8 steps each lane holds its token's sum over the unit, scaled once
// per unit by the row's scale times the 8 tokens' scales (a vector). Each broadcast weight serves
// kGemmGroups x 8 tokens, each activation vector kGemmRows rows.

constexpr int kLanes = 8;
constexpr int kGemmRows = SLM_QUANT_GEMM_ROWS;
constexpr int kGemmGroups = SLM_QUANT_GEMM_GROUPS;

struct GroupedActs {
  const int8_t* q;  // [group][unit][step 8][lane 8][4]
  const float* d;   // [group][unit][lane]: activation scales
  const float* s;   // [group][unit][3][lane]: d * (sum of q) over the unit, its first half, its second half
  int64_t n_units;
};

// Adds u . s (u unsigned, s signed bytes; groups of 4) to the int32 lanes of acc.
inline __m256i dot_acc(__m256i acc, __m256i u, __m256i s) {
#if SLM_QUANT_VNNI
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// acc[r][g] += rows wq[r] (decoded, n_units units) times token groups ga[g], lane = token.
template <typename F, int R, int G>
inline void gemm_tile(const int8_t* const* wq, const float* const* wsc, const GroupedActs& a, const int64_t* grp,
                      __m256 (&acc)[R][G]) {
  for (int64_t u = 0; u < a.n_units; ++u) {
    __m256i lo[R][G], hi[R][G];
    for (int r = 0; r < R; ++r) {
      for (int g = 0; g < G; ++g) lo[r][g] = hi[r][g] = _mm256_setzero_si256();
    }
    const int8_t* aq[G];
    for (int g = 0; g < G; ++g) aq[g] = a.q + (grp[g] * a.n_units + u) * (kUnit * kLanes);
    for (int k = 0; k < 8; ++k) {
      __m256i av[G];
      for (int g = 0; g < G; ++g) av[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[g] + 32 * k));
      for (int r = 0; r < R; ++r) {
        const __m256i wb = broadcast4(wq[r] + u * kUnit + 4 * k);
        for (int g = 0; g < G; ++g) {
          __m256i& sum = (F::kHalves && k >= 4) ? hi[r][g] : lo[r][g];
          if constexpr (F::kSigned && SLM_QUANT_VNNI) {  // q + 128, unsigned: vpdpbusd cannot saturate
            sum = dot_acc(sum, _mm256_xor_si256(wb, _mm256_set1_epi8(-128)), av[g]);
          } else if constexpr (F::kSigned) {
            sum = dot_acc(sum, _mm256_sign_epi8(wb, wb), _mm256_sign_epi8(av[g], wb));
          } else {
            sum = dot_acc(sum, wb, av[g]);
          }
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      const int64_t at = grp[g] * a.n_units + u;
      const __m256 da = _mm256_loadu_ps(a.d + at * kLanes);
      const float* sa = a.s + at * 3 * kLanes;
      for (int r = 0; r < R; ++r) {
        const float* sc = wsc[r] + u;  // fields a.n_units apart
        const int64_t f = a.n_units;
        __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(sc[0]), da), _mm256_cvtepi32_ps(lo[r][g]), acc[r][g]);
        if constexpr (F::kHalves) {
          v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(sc[f]), da), _mm256_cvtepi32_ps(hi[r][g]), v);
          v = _mm256_fmadd_ps(_mm256_set1_ps(sc[2 * f]), _mm256_loadu_ps(sa + kLanes), v);
          v = _mm256_fmadd_ps(_mm256_set1_ps(sc[3 * f]), _mm256_loadu_ps(sa + 2 * kLanes), v);
        } else if constexpr (F::kMin) {
          v = _mm256_fmadd_ps(_mm256_set1_ps(sc[2 * f]), _mm256_loadu_ps(sa), v);
        } else if constexpr (F::kSigned && SLM_QUANT_VNNI) {  // the 128 added to q
          v = _mm256_fmadd_ps(_mm256_set1_ps(-128.0f * sc[0]), _mm256_loadu_ps(sa), v);
        }
        acc[r][g] = v;
      }
    }
  }
}

template <typename F, int G>
inline void gemm_groups(const int8_t* const* wq, const float* const* wsc, const GroupedActs& a, int64_t g0,
                        int64_t n_tokens, int64_t first, int64_t count, int64_t n_out, float* y) {
  int64_t grp[G];
  for (int g = 0; g < G; ++g) grp[g] = g0 + g;
  __m256 acc[kGemmRows][G];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm256_setzero_ps();
  }
  gemm_tile<F, kGemmRows, G>(wq, wsc, a, grp, acc);
  for (int g = 0; g < G; ++g) {
    for (int r = 0; r < count; ++r) {
      alignas(32) float lanes[kLanes];
      _mm256_store_ps(lanes, acc[r][g]);
      for (int l = 0; l < kLanes; ++l) {
        const int64_t t = (g0 + g) * kLanes + l;
        if (t < n_tokens) y[t * n_out + first + r] = lanes[l];
      }
    }
  }
}

// Many tokens: the tile's rows decoded once, then every group of tokens.
template <typename F>
void tile_grouped(const uint8_t* const* rows, int8_t* pq, float* psc, const GroupedActs& a, int64_t n_in,
                  int64_t n_tokens, int64_t first, int64_t count, int64_t n_out, float* y) {
  constexpr int64_t kUnitsPerBlock = F::kElems / kUnit;
  const int64_t n_blocks = n_in / F::kElems;
  const int8_t* wq[kGemmRows];
  const float* wsc[kGemmRows];
  for (int r = 0; r < kGemmRows; ++r) {
    wq[r] = pq + r * n_in;
    wsc[r] = psc + r * 4 * a.n_units;
    for (int64_t b = 0; b < n_blocks; ++b) {
      F::decode(rows[r] + b * F::kBytes, pq + r * n_in + b * F::kElems, psc + r * 4 * a.n_units + b * kUnitsPerBlock,
                a.n_units);
    }
  }
  const int64_t n_groups = (n_tokens + kLanes - 1) / kLanes;
  int64_t g0 = 0;
  for (; g0 + kGemmGroups <= n_groups; g0 += kGemmGroups) {
    gemm_groups<F, kGemmGroups>(wq, wsc, a, g0, n_tokens, first, count, n_out, y);
  }
  for (; g0 < n_groups; ++g0) gemm_groups<F, 1>(wq, wsc, a, g0, n_tokens, first, count, n_out, y);
}

// Lays out the quantized activations of n_tokens tokens in groups of 8 (GroupedActs); tokens past
// the end of the last group get zeros.
void group_activations(const Acts& a, int64_t n_tokens, int8_t* q, float* d, float* s) {
  const int64_t n_groups = (n_tokens + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static) if (n_groups > 1)
  for (int64_t g = 0; g < n_groups; ++g) {
    for (int64_t u = 0; u < a.n_units; ++u) {
      int8_t* qo = q + (g * a.n_units + u) * (kUnit * kLanes);
      float* dout = d + (g * a.n_units + u) * kLanes;
      float* sout = s + (g * a.n_units + u) * 3 * kLanes;
      for (int l = 0; l < kLanes; ++l) {
        const int64_t t = g * kLanes + l;
        if (t < n_tokens) {
          const int8_t* src = a.q + t * a.n_in + u * kUnit;
          for (int k = 0; k < 8; ++k) std::memcpy(qo + 32 * k + 4 * l, src + 4 * k, 4);
          dout[l] = a.d[t * a.n_units + u];
          for (int i = 0; i < 3; ++i) sout[i * kLanes + l] = a.s[(3 * t + i) * a.n_units + u];
        } else {
          for (int k = 0; k < 8; ++k) std::memset(qo + 32 * k + 4 * l, 0, 4);
          dout[l] = sout[l] = sout[kLanes + l] = sout[2 * kLanes + l] = 0.0f;
        }
      }
    }
  }
}

}  // namespace
}  // namespace slm::cpu::kernels

#include "slm/backend/cpu/matmul_quant_gemv.hpp"

namespace slm::cpu::kernels {
namespace {

template <int C, typename F>
void run_streaming(const uint8_t* w, size_t row_bytes, int64_t first, int64_t count, int64_t n_out, int8_t* pq,
                   float* psc, const Acts& a, float* y) {
  const uint8_t* rows[kRows];
  for (int r = 0; r < kRows; ++r) rows[r] = w + size_t(first + std::min<int64_t>(r, count - 1)) * row_bytes;
  const bool prefetch = first + 2 * kRows <= n_out;
  tile_streaming<F, C>(rows, prefetch, size_t(kRows) * row_bytes, pq, psc, a, first, count, n_out, y);
}

template <typename F>
void run(const uint8_t* w, int64_t n_out, int64_t n_in, int64_t n_tokens, const Acts& a, const GroupedActs& ga,
         float* y) {
  const size_t row_bytes = size_t(n_in / F::kElems) * F::kBytes;
  const bool grouped = n_tokens > kCols;
  const int rows_per_tile = grouped ? kGemmRows : kRows;
  const int64_t n_tiles = (n_out + rows_per_tile - 1) / rows_per_tile;
  const int n_threads = n_tiles > 1 ? std::max(1, omp_get_max_threads()) : 1;
  const size_t panel_bytes = size_t(std::max(kRows, kGemmRows)) * size_t(n_in);
  const size_t panel_floats = size_t(std::max(kRows, kGemmRows)) * 4 * size_t(a.n_units);
  thread_local std::vector<int8_t> q_scratch;
  thread_local std::vector<float> sc_scratch;
  q_scratch.resize(panel_bytes * size_t(n_threads));
  sc_scratch.resize(panel_floats * size_t(n_threads));
  int8_t* q_all = q_scratch.data();
  float* sc_all = sc_scratch.data();

#pragma omp parallel num_threads(n_threads)
  {
    int8_t* pq = q_all + panel_bytes * size_t(omp_get_thread_num());
    float* psc = sc_all + panel_floats * size_t(omp_get_thread_num());
    // Dynamic: a thread that the (shared) machine has descheduled does not hold up the others.
    // Chunks of 8 tiles keep each thread on a run of consecutive rows (prefetch, pages).
#pragma omp for schedule(dynamic, 8)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t first = tile * rows_per_tile;
      const int64_t count = std::min<int64_t>(rows_per_tile, n_out - first);
      if (grouped) {
        const uint8_t* rows[kGemmRows];
        for (int r = 0; r < kGemmRows; ++r) {
          rows[r] = w + size_t(first + std::min<int64_t>(r, count - 1)) * row_bytes;
        }
        tile_grouped<F>(rows, pq, psc, ga, n_in, n_tokens, first, count, n_out, y);
      } else {
        switch (n_tokens) {
          case 1:
            run_streaming<1, F>(w, row_bytes, first, count, n_out, pq, psc, a, y);
            break;
#if SLM_QUANT_COLS >= 2
          case 2:
            run_streaming<2, F>(w, row_bytes, first, count, n_out, pq, psc, a, y);
            break;
#endif
#if SLM_QUANT_COLS >= 3
          case 3:
            run_streaming<3, F>(w, row_bytes, first, count, n_out, pq, psc, a, y);
            break;
#endif
#if SLM_QUANT_COLS >= 4
          case 4:
            run_streaming<4, F>(w, row_bytes, first, count, n_out, pq, psc, a, y);
            break;
#endif
          default:
            break;
        }
      }
    }
  }
}

// The entry: quantizes the activations, then runs the format's kernel. Arguments already checked.
void matmul_quant_impl(DType w_type, const uint8_t* w, int64_t n_out, int64_t n_in, const float* x,
                       int64_t n_tokens, float* y) {
  const int64_t n_units = n_in / kUnit;
  thread_local std::vector<int8_t> qx;
  thread_local std::vector<float> dx;
  qx.resize(size_t(n_tokens * n_in));
  dx.resize(size_t(4 * n_tokens * n_units));
  int8_t* q = qx.data();  // the calling thread's buffers: other threads see them through pointers
  float* d = dx.data();
  float* s = d + n_tokens * n_units;
#pragma omp parallel for schedule(static) if (n_tokens > 1)
  for (int64_t t = 0; t < n_tokens; ++t) {
    quantize_activations(x + t * n_in, n_in, q + t * n_in, d + t * n_units, s + 3 * t * n_units);
  }
  const Acts a{q, d, s, n_in, n_units};
  if (n_tokens == 1) {  // generation: products on the packed blocks (matmul_quant_gemv.hpp)
    switch (w_type) {
      case DType::Q8_0: return gemv<GQ8_0>(w, n_out, n_in, a, y);
      case DType::Q4_0: return gemv<GQ4_0>(w, n_out, n_in, a, y);
      case DType::Q4_1: return gemv<GQ4_1>(w, n_out, n_in, a, y);
      case DType::Q5_0: return gemv<GQ5_0>(w, n_out, n_in, a, y);
      case DType::Q5_1: return gemv<GQ5_1>(w, n_out, n_in, a, y);
      case DType::IQ4_NL: return gemv<GIQ4_NL>(w, n_out, n_in, a, y);
      case DType::Q2_K: return gemv<GQ2_K>(w, n_out, n_in, a, y);
      case DType::Q3_K: return gemv<GQ3_K>(w, n_out, n_in, a, y);
      case DType::Q4_K: return gemv<GQ4_K>(w, n_out, n_in, a, y);
      case DType::Q5_K: return gemv<GQ5_K>(w, n_out, n_in, a, y);
      case DType::Q6_K: return gemv<GQ6_K>(w, n_out, n_in, a, y);
      case DType::IQ4_XS: return gemv<GIQ4_XS>(w, n_out, n_in, a, y);
      default: return;
    }
  }
  GroupedActs ga{nullptr, nullptr, nullptr, n_units};
  thread_local std::vector<int8_t> gq;
  thread_local std::vector<float> gf;
  if (n_tokens > kCols) {
    const int64_t n_groups = (n_tokens + kLanes - 1) / kLanes;
    gq.resize(size_t(n_groups * kLanes * n_in));
    gf.resize(size_t(4 * n_groups * kLanes * n_units));
    ga.q = gq.data();
    ga.d = gf.data();
    ga.s = gf.data() + n_groups * kLanes * n_units;
    group_activations(a, n_tokens, gq.data(), gf.data(), gf.data() + n_groups * kLanes * n_units);
  }
  switch (w_type) {
    case DType::Q8_0: return run<Q8_0>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q4_0: return run<Q4_0>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q4_1: return run<Q4_1>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q5_0: return run<Q5_0>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q5_1: return run<Q5_1>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::IQ4_NL: return run<IQ4_NL>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q2_K: return run<Q2_K>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q3_K: return run<Q3_K>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q4_K: return run<Q4_K>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q5_K: return run<Q5_K>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::Q6_K: return run<Q6_K>(w, n_out, n_in, n_tokens, a, ga, y);
    case DType::IQ4_XS: return run<IQ4_XS>(w, n_out, n_in, n_tokens, a, ga, y);
    default: return;  // the caller sends only the types above (quant_simd_handles)
  }
}

}  // namespace
}  // namespace slm::cpu::kernels
