// One-token products (generation) with block-quantized weights: dot products taken directly on the
// packed blocks, included by matmul_quant_impl.hpp (after the activation helpers) and built once per
// instruction set like it.
//
// A tile of kGemvRows weight rows is done in two passes over its rows:
//   1. scales: each unit's (or half unit's) weight scale times the activation scale of that unit, into
//      a small per-thread array, and the sum of the minimum terms (minimum times the activation
//      unit's sum) as one number per row, vectorized over units; this pass reads the rows from memory
//      and prefetches the same bytes of the next tile's rows.
//   2. products: per unit, the activation's 32 bytes are loaded once and multiplied with each row's
//      unit, unpacked in registers from the block (no decoded copy of the row); the eight int32 lanes
//      of each product are scaled lane-wise and accumulated.
// Signed formats (Q8_0, IQ4_NL, IQ4_XS): with VNNI the weights are taken as q + 128 (unsigned) and the
// extra 128 * sum(a) goes into the minimum term; without VNNI |q| times a with q's sign (vpsignb).
#pragma once

namespace slm::cpu::kernels {
namespace {

constexpr int kGemvRows = 4;

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline __m256i shift_and(__m256i v, int count, __m256i mask) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(count)), mask);
}

// Eight f16 values at p, p + stride, ... p + 7 * stride (each 4-byte read inside the row).
inline __m256 gather_f16x8(const uint8_t* p, int stride) {
  const __m256i index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
  const __m256i words = _mm256_and_si256(_mm256_i32gather_epi32(reinterpret_cast<const int*>(p), index, 1),
                                         _mm256_set1_epi32(0xffff));
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(words, words), 0x08);
  return _mm256_cvtph_ps(_mm256_castsi256_si128(packed));
}

// 0x10 in byte i where bit i of bits is set.
inline __m256i high_bits(uint32_t bits) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  return _mm256_maskz_mov_epi8(__mmask32(bits), _mm256_set1_epi8(0x10));
#else
  return bit4_of(bits);
#endif
}

// Two consecutive 32-element blocks b0, b0 + 1 of a format with 16 bytes of nibbles per block, as
// lo = elements 0..15 of both (block b0 in bytes 0..15) and hi = elements 16..31 of both.
template <typename G>
inline void unit_pair(const uint8_t* b0, __m256i& lo, __m256i& hi) {
  using F = typename G::F;
  const uint8_t* b1 = b0 + F::kBytes;
  const __m256i packed = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + G::kNibbles))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + G::kNibbles)), 1);
  const __m256i m = _mm256_set1_epi8(15);
  lo = _mm256_and_si256(packed, m);
  hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), m);
  if constexpr (G::kHighBits >= 0) {
    uint32_t h0, h1;
    std::memcpy(&h0, b0 + G::kHighBits, 4);
    std::memcpy(&h1, b1 + G::kHighBits, 4);
    lo = _mm256_or_si256(lo, high_bits((h0 & 0xffff) | (h1 << 16)));
    hi = _mm256_or_si256(hi, high_bits((h0 >> 16) | (h1 & 0xffff0000u)));
  }
  if constexpr (G::kTable) {
    const __m256i table = _mm256_broadcastsi128_si256(iq4_table());
    lo = _mm256_shuffle_epi8(table, lo);
    hi = _mm256_shuffle_epi8(table, hi);
  }
}

// Eight int32 sums: u0 . s0 + u1 . s1 over groups of four bytes (u unsigned, s signed).
inline __m256i dot2_u8s8(__m256i u0, __m256i s0, __m256i u1, __m256i s1) {
#if SLM_QUANT_VNNI
  return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u0, s0), u1, s1);
#else
  const __m256i one = _mm256_set1_epi16(1);
  return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u0, s0), one),
                          _mm256_madd_epi16(_mm256_maddubs_epi16(u1, s1), one));
#endif
}

// Per format: kScales scales per block (one per unit, or two with kHalves), the unit values in
// registers (unit<j>), and the block's scales and minimums (w = d * q + m per unit or half unit).
// The 256-element formats: scales read one block at a time (kMinKind unused).
struct SuperBlock {
  static constexpr int kMinKind = 0;
  static constexpr float kMinFactor = 0;
};

struct GQ8_0 {
  static constexpr bool kPairs = false;
  static constexpr int kNibbles = 0, kHighBits = -1, kTable = 0;
  static constexpr int kMinKind = 0;
  static constexpr float kMinFactor = 0;
  using F = Q8_0;
  static constexpr int kScales = 1;
  static __m256i unit(const uint8_t* b, int) { return load32(b + 2); }
  static void scales(const uint8_t* b, float* d, float* m) {
    d[0] = f16_at(b);
    m[0] = 0;
  }
};

struct GQ4_0 {
  static constexpr bool kPairs = true;
  static constexpr int kNibbles = 2, kHighBits = -1, kTable = 0;
  static constexpr int kMinKind = 1;
  static constexpr float kMinFactor = -8;
  using F = Q4_0;
  static constexpr int kScales = 1;
  static __m256i unit(const uint8_t* b, int) { return nibbles(b + 2); }
  static void scales(const uint8_t* b, float* d, float* m) {
    d[0] = f16_at(b);
    m[0] = -8 * d[0];
  }
};

struct GQ4_1 {
  static constexpr bool kPairs = true;
  static constexpr int kNibbles = 4, kHighBits = -1, kTable = 0;
  static constexpr int kMinKind = 2;
  static constexpr float kMinFactor = 0;
  using F = Q4_1;
  static constexpr int kScales = 1;
  static __m256i unit(const uint8_t* b, int) { return nibbles(b + 4); }
  static void scales(const uint8_t* b, float* d, float* m) {
    d[0] = f16_at(b);
    m[0] = f16_at(b + 2);
  }
};

struct GQ5_0 {
  static constexpr bool kPairs = true;
  static constexpr int kNibbles = 6, kHighBits = 2, kTable = 0;
  static constexpr int kMinKind = 1;
  static constexpr float kMinFactor = -16;
  using F = Q5_0;
  static constexpr int kScales = 1;
  static __m256i unit(const uint8_t* b, int) {
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    return _mm256_or_si256(nibbles(b + 6), bit4_of(qh));
  }
  static void scales(const uint8_t* b, float* d, float* m) {
    d[0] = f16_at(b);
    m[0] = -16 * d[0];
  }
};

struct GQ5_1 {
  static constexpr bool kPairs = true;
  static constexpr int kNibbles = 8, kHighBits = 4, kTable = 0;
  static constexpr int kMinKind = 2;
  static constexpr float kMinFactor = 0;
  using F = Q5_1;
  static constexpr int kScales = 1;
  static __m256i unit(const uint8_t* b, int) {
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    return _mm256_or_si256(nibbles(b + 8), bit4_of(qh));
  }
  static void scales(const uint8_t* b, float* d, float* m) {
    d[0] = f16_at(b);
    m[0] = f16_at(b + 2);
  }
};

struct GIQ4_NL {
  static constexpr bool kPairs = true;
  static constexpr int kNibbles = 2, kHighBits = -1, kTable = 1;
  static constexpr int kMinKind = 0;
  static constexpr float kMinFactor = 0;
  using F = IQ4_NL;
  static constexpr int kScales = 1;
  static __m256i unit(const uint8_t* b, int) { return table_lookup(b + 2, iq4_table()); }
  static void scales(const uint8_t* b, float* d, float* m) {
    d[0] = f16_at(b);
    m[0] = 0;
  }
};

struct GQ4_K : SuperBlock {
  using F = Q4_K;
  static constexpr int kScales = 8;
  static __m256i unit(const uint8_t* b, int j) {
    const __m256i packed = load32(b + 16 + 32 * (j / 2));
    return shift_and(packed, 4 * (j & 1), _mm256_set1_epi8(15));
  }
  // The eight 6-bit scales and minimums of the 12 bytes at b + 4, unpacked four at a time in
  // 32-bit words, then converted in one vector each.
  static void scales(const uint8_t* b, float* d, float* m) {
    uint32_t u[3];
    std::memcpy(u, b + 4, 12);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
    const uint64_t sc = uint64_t(u[0] & low6) | uint64_t((u[2] & low4) | (((u[0] >> 6) & top2) << 4)) << 32;
    const uint64_t mn = uint64_t(u[1] & low6) | uint64_t(((u[2] >> 4) & low4) | (((u[1] >> 6) & top2) << 4)) << 32;
    const __m256 scv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(sc))));
    const __m256 mnv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(mn))));
    _mm256_store_ps(d, _mm256_mul_ps(scv, _mm256_set1_ps(f16_at(b))));
    _mm256_store_ps(m, _mm256_mul_ps(mnv, _mm256_set1_ps(-f16_at(b + 2))));
  }
};

struct GQ5_K : SuperBlock {
  using F = Q5_K;
  static constexpr int kScales = 8;
  static __m256i unit(const uint8_t* b, int j) {
    const __m256i low = shift_and(load32(b + 48 + 32 * (j / 2)), 4 * (j & 1), _mm256_set1_epi8(15));
    const __m256i high = shift_and(load32(b + 16), j, _mm256_set1_epi8(1));
    return _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
  }
  static void scales(const uint8_t* b, float* d, float* m) { GQ4_K::scales(b, d, m); }
};

struct GQ6_K : SuperBlock {
  using F = Q6_K;
  static constexpr int kScales = 16;
  static __m256i unit(const uint8_t* b, int j) {
    const int h = j / 4, k = j % 4;
    const __m256i low = shift_and(load32(b + 64 * h + 32 * (k & 1)), k < 2 ? 0 : 4, _mm256_set1_epi8(15));
    const __m256i high = shift_and(load32(b + 128 + 32 * h), 2 * k, _mm256_set1_epi8(3));
    return _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
  }
  static void scales(const uint8_t* b, float* d, float* m) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
    const __m256 dd = _mm256_set1_ps(f16_at(b + 208)), m32 = _mm256_set1_ps(-32.0f);
    const __m256 lo = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), dd);
    const __m256 hi = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))), dd);
    _mm256_store_ps(d, lo);
    _mm256_store_ps(d + 8, hi);
    _mm256_store_ps(m, _mm256_mul_ps(lo, m32));
    _mm256_store_ps(m + 8, _mm256_mul_ps(hi, m32));
  }
};

struct GQ2_K : SuperBlock {
  using F = Q2_K;
  static constexpr int kScales = 16;
  static __m256i unit(const uint8_t* b, int j) {
    return shift_and(load32(b + 16 + 32 * (j / 4)), 2 * (j % 4), _mm256_set1_epi8(3));
  }
  static void scales(const uint8_t* b, float* d, float* m) {
    const float dd = f16_at(b + 80), dmin = f16_at(b + 82);
    for (int s = 0; s < 16; ++s) {
      d[s] = dd * float(b[s] & 15);
      m[s] = -dmin * float(b[s] >> 4);
    }
  }
};

struct GQ3_K : SuperBlock {
  using F = Q3_K;
  static constexpr int kScales = 16;
  static __m256i unit(const uint8_t* b, int j) {
    const __m256i low = shift_and(load32(b + 32 + 32 * (j / 4)), 2 * (j % 4), _mm256_set1_epi8(3));
    const __m256i high = _mm256_slli_epi16(shift_and(load32(b), j, _mm256_set1_epi8(1)), 2);
    return _mm256_or_si256(low, high);
  }
  static void scales(const uint8_t* b, float* d, float* m) {
    const uint8_t* packed = b + 96;
    const float dd = f16_at(b + 108);
    for (int e = 0; e < 16; ++e) {
      const int low = e < 8 ? (packed[e] & 15) : (packed[e - 8] >> 4);
      const int high = (packed[8 + e % 4] >> (2 * (e / 4))) & 3;
      d[e] = dd * float((low | (high << 4)) - 32);
      m[e] = -4 * d[e];
    }
  }
};

struct GIQ4_XS : SuperBlock {
  using F = IQ4_XS;
  static constexpr int kScales = 8;
  static __m256i unit(const uint8_t* b, int j) { return table_lookup(b + 8 + 16 * j, iq4_table()); }
  static void scales(const uint8_t* b, float* d, float* m) {
    const float dd = f16_at(b);
    const int scales_h = b[2] | (b[3] << 8);
    for (int s = 0; s < 8; ++s) {
      const int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 15) | (((scales_h >> (2 * s)) & 3) << 4);
      d[s] = dd * float(ls - 32);
      m[s] = 0;
    }
  }
};

// True for the formats read two blocks at a time (kPairs).
template <typename G>
constexpr bool kHasPairs = requires { requires G::kPairs; };

// The activations of one token as the scale pass wants them: per scale slot (unit, or half unit for
// kHalves formats), the activation scale and the activation's d * sum over the slot.
struct GemvActs {
  const int8_t* q;
  const int8_t* pairs;  // kPairs formats: per two units, elements 0..15 of both then 16..31 of both
  const float* da;  // n_slots
  const float* sa;  // n_slots
  int64_t n_units, n_slots;
};

// Sum of the products of one tile of rows (count <= kGemvRows) with the token; y[r] for r < count.
template <typename G>
void gemv_tile(const uint8_t* const* rows, size_t row_bytes, size_t ahead, const GemvActs& a, float* cs, float* y,
               int count) {
  using F = typename G::F;
  constexpr int64_t kUnitsPerBlock = F::kElems / kUnit;
  constexpr bool kHalves = G::kScales > kUnitsPerBlock;
  constexpr bool kXor = F::kSigned && SLM_QUANT_VNNI;  // q + 128 as unsigned bytes
  const int64_t n_blocks = a.n_units / kUnitsPerBlock;
  const int64_t n_slots = a.n_slots;
  float minimum[kGemvRows];

  // Pass 1: scales times activation scales, minimum terms, prefetch of the next tile.
#if defined(__AVX512BW__)
  // The f16 words of 8 blocks' scales (and minimums) picked out of 128 loaded bytes: in one go when
  // the 8 scales lie within them, else 4 blocks from each of two 128-byte loads (words 0..3 and
  // 8..11 of the first, 4..7 and 12..15 of the second).
  constexpr int kWords = int(F::kBytes / 2);
  constexpr bool kOnePermute = 7 * kWords <= 63 && G::kMinKind != 2;
  alignas(64) int16_t idx_lo[32] = {}, idx_hi[32] = {};
  for (int i = 0; i < 4; ++i) {
    idx_lo[i] = idx_hi[4 + i] = int16_t(i * kWords);
    idx_lo[8 + i] = idx_hi[12 + i] = int16_t(i * kWords + 1);
  }
  if constexpr (kOnePermute) {
    for (int i = 0; i < 8; ++i) idx_lo[i] = int16_t(i * kWords);
  }
  const __m512i word_index = _mm512_load_si512(idx_lo), word_index_hi = _mm512_load_si512(idx_hi);
#endif
  for (int r = 0; r < kGemvRows; ++r) {
    float* d = cs + r * n_slots;
    const uint8_t* row = rows[r];
    __m256 macc = _mm256_setzero_ps();
    int64_t b = 0;
    if constexpr (kUnitsPerBlock == 1) {  // 32-element blocks: eight scales at a time
      for (; b + 8 <= n_blocks; b += 8) {
        const uint8_t* block = row + b * F::kBytes;
        if (ahead != 0) {
          for (int64_t off = 0; off < 8 * F::kBytes; off += 64) {
            _mm_prefetch(reinterpret_cast<const char*>(block + ahead + off), _MM_HINT_T1);
          }
        }
        __m256 dv, mv = _mm256_setzero_ps();
#if defined(__AVX512BW__)
        if constexpr (kOnePermute) {  // the 8 scales lie in the first 128 bytes
          const __m512i words = _mm512_permutex2var_epi16(_mm512_loadu_si512(block), word_index,
                                                          _mm512_loadu_si512(block + 64));
          dv = _mm256_cvtph_ps(_mm512_castsi512_si128(words));
        } else {
          if ((b + 4) * F::kBytes + 128 > int64_t(row_bytes)) break;  // the rest through the scalar tail
          const uint8_t* half = block + 4 * F::kBytes;
          const __m512i w0 = _mm512_permutex2var_epi16(_mm512_loadu_si512(block), word_index,
                                                       _mm512_loadu_si512(block + 64));
          const __m512i w1 = _mm512_permutex2var_epi16(_mm512_loadu_si512(half), word_index_hi,
                                                       _mm512_loadu_si512(half + 64));
          const __m512i words = _mm512_mask_blend_epi16(__mmask32(0xf0f0), w0, w1);
          dv = _mm256_cvtph_ps(_mm512_castsi512_si128(words));
          if constexpr (G::kMinKind == 2) mv = _mm256_cvtph_ps(_mm512_extracti32x4_epi32(words, 1));
        }
#else
        dv = gather_f16x8(block, int(F::kBytes));
        if constexpr (G::kMinKind == 2) mv = gather_f16x8(block + 2, int(F::kBytes));
#endif
        if constexpr (G::kMinKind == 1) mv = _mm256_mul_ps(dv, _mm256_set1_ps(G::kMinFactor));
        if constexpr (kXor) mv = _mm256_fmadd_ps(dv, _mm256_set1_ps(-128.0f), mv);
        macc = _mm256_fmadd_ps(mv, _mm256_loadu_ps(a.sa + b), macc);
        _mm256_storeu_ps(d + b, _mm256_mul_ps(dv, _mm256_loadu_ps(a.da + b)));
      }
    }
    float mtail = 0.0f;
    for (; b < n_blocks; ++b) {
      const uint8_t* block = row + b * F::kBytes;
      if (ahead != 0) {
        for (int64_t off = 0; off < F::kBytes; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(block + ahead + off), _MM_HINT_T1);
        }
      }
      alignas(32) float dv[G::kScales];
      alignas(32) float mv[G::kScales];
      G::scales(block, dv, mv);
      const int64_t i0 = b * G::kScales;
      if constexpr (G::kScales % 8 == 0) {  // the 256-element formats: 8 or 16 scales, in vectors
        for (int i = 0; i < G::kScales; i += 8) {
          const __m256 dvec = _mm256_load_ps(dv + i);
          __m256 mvec = _mm256_load_ps(mv + i);
          if constexpr (kXor) mvec = _mm256_fmadd_ps(dvec, _mm256_set1_ps(-128.0f), mvec);
          macc = _mm256_fmadd_ps(mvec, _mm256_loadu_ps(a.sa + i0 + i), macc);
          _mm256_storeu_ps(d + i0 + i, _mm256_mul_ps(dvec, _mm256_loadu_ps(a.da + i0 + i)));
        }
      } else {
        for (int i = 0; i < G::kScales; ++i) {
          const float mi = kXor ? mv[i] - 128.0f * dv[i] : mv[i];
          mtail += mi * a.sa[i0 + i];
          d[i0 + i] = dv[i] * a.da[i0 + i];
        }
      }
    }
    minimum[r] = hsum(macc) + mtail;
  }

  // Pass 2: products, unit by unit.
  __m256 acc[kGemvRows];
  for (auto& v : acc) v = _mm256_setzero_ps();
  const __m256i flip = _mm256_set1_epi8(-128);
  const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  int64_t b0 = 0;
  if constexpr (kHasPairs<G>) {
    for (; b0 + 2 <= n_blocks; b0 += 2) {
      const __m256i alo = load32(reinterpret_cast<const uint8_t*>(a.pairs + b0 * kUnit));
      const __m256i ahi = load32(reinterpret_cast<const uint8_t*>(a.pairs + b0 * kUnit + 32));
      for (int r = 0; r < kGemvRows; ++r) {
        __m256i lo, hi;
        unit_pair<G>(rows[r] + b0 * F::kBytes, lo, hi);
        __m256i isum;
        if constexpr (kXor) {
          isum = dot2_u8s8(_mm256_xor_si256(lo, flip), alo, _mm256_xor_si256(hi, flip), ahi);
        } else if constexpr (F::kSigned) {
          isum = dot2_u8s8(_mm256_sign_epi8(lo, lo), _mm256_sign_epi8(alo, lo), _mm256_sign_epi8(hi, hi),
                           _mm256_sign_epi8(ahi, hi));
        } else {
          isum = dot2_u8s8(lo, alo, hi, ahi);
        }
        const float* d = cs + r * n_slots + b0;
        const __m128 pair = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(d)));
        const __m256 scale = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(pair), spread);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r]);
      }
    }
  }
  for (int64_t b = b0; b < n_blocks; ++b) {
#pragma GCC unroll 8
    for (int j = 0; j < int(kUnitsPerBlock); ++j) {
      const int64_t u = b * kUnitsPerBlock + j;
      const __m256i av = load32(reinterpret_cast<const uint8_t*>(a.q + u * kUnit));
      for (int r = 0; r < kGemvRows; ++r) {
        const __m256i wv = G::unit(rows[r] + b * F::kBytes, j);
        __m256i isum;
        if constexpr (kXor) {
          isum = dot_u8s8(_mm256_xor_si256(wv, flip), av);
        } else if constexpr (F::kSigned) {
          isum = dot_u8s8(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(av, wv));
        } else {
          isum = dot_u8s8(wv, av);
        }
        const float* d = cs + r * n_slots;
        __m256 scale;
        if constexpr (kHalves) {
          const __m128 pair = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(d + 2 * u)));
          scale = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(pair), spread);
        } else {
          scale = _mm256_broadcast_ss(d + u);
        }
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r]);
      }
    }
  }
  for (int r = 0; r < count; ++r) y[r] = hsum(acc[r]) + minimum[r];
}

// y[o] = w[o] . x for one token: tiles of kGemvRows rows, OpenMP threads over chunks of tiles.
template <typename G>
void gemv(const uint8_t* w, int64_t n_out, int64_t n_in, const Acts& acts, float* y) {
  using F = typename G::F;
  constexpr int64_t kUnitsPerBlock = F::kElems / kUnit;
  constexpr bool kHalves = G::kScales > kUnitsPerBlock;
  const size_t row_bytes = size_t(n_in / F::kElems) * F::kBytes;
  const int64_t n_units = acts.n_units;
  const int64_t n_slots = kHalves ? 2 * n_units : n_units;

  // Activation scale and d * sum per slot.
  thread_local std::vector<float> slots;
  slots.resize(size_t(2 * n_slots));
  float* da = slots.data();
  float* sa = da + n_slots;
  for (int64_t u = 0; u < n_units; ++u) {
    if (kHalves) {
      da[2 * u] = da[2 * u + 1] = acts.d[u];
      sa[2 * u] = acts.s[n_units + u];
      sa[2 * u + 1] = acts.s[2 * n_units + u];
    } else {
      da[u] = acts.d[u];
      sa[u] = acts.s[u];
    }
  }
  const int8_t* pairs = nullptr;
  if constexpr (kHasPairs<G>) {
    thread_local std::vector<int8_t> pair_q;
    pair_q.resize(size_t(n_in));
    for (int64_t u = 0; u + 2 <= n_units; u += 2) {
      const int8_t* src = acts.q + u * kUnit;
      int8_t* dst = pair_q.data() + u * kUnit;
      std::memcpy(dst, src, 16);
      std::memcpy(dst + 16, src + 32, 16);
      std::memcpy(dst + 32, src + 16, 16);
      std::memcpy(dst + 48, src + 48, 16);
    }
    pairs = pair_q.data();
  }
  const GemvActs a{acts.q, pairs, da, sa, n_units, n_slots};

  const int64_t n_tiles = (n_out + kGemvRows - 1) / kGemvRows;
  const int n_threads = n_tiles > 1 ? std::max(1, omp_get_max_threads()) : 1;
  // Chunks of consecutive tiles: about 16 per thread, so a thread the shared machine descheduled
  // leaves its remaining chunks to the others.
  const int64_t chunk = std::max<int64_t>(1, n_tiles / (16 * int64_t(n_threads)));
#pragma omp parallel num_threads(n_threads)
  {
    thread_local std::vector<float> scratch;
    scratch.resize(size_t(kGemvRows * n_slots));
    float* cs = scratch.data();
#pragma omp for schedule(dynamic, chunk)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t first = tile * kGemvRows;
      const int count = int(std::min<int64_t>(kGemvRows, n_out - first));
      const uint8_t* rows[kGemvRows];
      for (int r = 0; r < kGemvRows; ++r) rows[r] = w + size_t(first + std::min(r, count - 1)) * row_bytes;
      // The same bytes of the next tile's rows (only where that tile is whole: never past the end).
      const size_t ahead = first + 2 * kGemvRows <= n_out ? size_t(kGemvRows) * row_bytes : 0;
      gemv_tile<G>(rows, row_bytes, ahead, a, cs, y + first, count);
    }
  }
}

}  // namespace
}  // namespace slm::cpu::kernels
