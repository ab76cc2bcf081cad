// The K-quants: super-blocks of 256 elements with quantized per-sub-block scales.
//
// Layouts (bytes; f16/f32/i16 little-endian). "Halves" are the two groups of 128 elements; inside a
// half, the 2-bit formats spread four 32-element quarters over the 2-bit fields of 32 bytes.
//   Q2_K  84  = scales u8[16] | qs u8[64] | d f16 | dmin f16
//         16 sub-blocks of 16; scales[s] = scale (low 4 bits) | min (high 4 bits);
//         element e = 128h + 32k + i (i < 32): 2-bit q = (qs[32h + i] >> 2k) & 3;
//         x = (d * scale) * q - (dmin * min), sub-block s = e / 16
//   Q3_K  110 = hmask u8[32] | qs u8[64] | scales u8[12] | d f16
//         16 signed 6-bit scales (stored + 32): low 4 bits of scale s in scales[s] (s < 8) or the
//         high nibble of scales[s - 8]; high 2 bits in bits 2(s/4).. of scales[8 + s%4];
//         q = 2-bit value as Q2_K, minus 4 unless bit (e / 32) of hmask[e % 32] is set;
//         x = (d * (scale - 32)) * q
//   Q4_K  144 = d f16 | dmin f16 | scales u8[12] | qs u8[128]
//         8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes: for s < 4 scale =
//         scales[s] & 63, min = scales[s+4] & 63; for s >= 4 scale = (scales[s+4] & 15) |
//         (scales[s-4] >> 6) << 4, min = (scales[s+4] >> 4) | (scales[s] >> 6) << 4;
//         element 64c + i: low nibble of qs[32c + i]; 64c + 32 + i: its high nibble;
//         x = (d * scale) * q - (dmin * min)
//   Q5_K  176 = d f16 | dmin f16 | scales u8[12] | qh u8[32] | qs u8[128]
//         as Q4_K plus a fifth bit: element 64c + i takes bit 2c of qh[i], 64c + 32 + i bit 2c+1
//   Q6_K  210 = ql u8[128] | qh u8[64] | scales i8[16] | d f16
//         element 128h + 32k + i: low 4 bits from ql[64h + i + 32(k&1)] (low nibble for k < 2,
//         high for k >= 2), high 2 bits (qh[32h + i] >> 2k) & 3; x = (d * scale) * (q - 32)
//   Q8_K  292 = d f32 | q i8[256] | bsums i16[16] (sums of q over 16-element groups); x = d * q
//
// Reference quantizers: each sub-block gets the best (scale[, minimum]) of a grid search
// (quant_search.cpp) with the error weighting of the format's reference quantizer; the sub-block
// scales are then rounded to their bit width against the super-block scale (the largest one
// maps to the top level), and every element is requantized with the stored scales.
#include <cmath>

#include "slm/format/quant_internal.hpp"

namespace slm::quant_detail {
namespace {

constexpr int kSub16 = kSuperBlock / 16;  // sub-blocks of 16 elements
constexpr int kSub32 = kSuperBlock / 32;  // sub-blocks of 32 elements

float sum_squares(const float* x, int n) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

// 6-bit scale and min of sub-block s (0..7) of Q4_K/Q5_K.
void k4_scale_min(const uint8_t* packed, int s, int* scale, int* min) {
  if (s < 4) {
    *scale = packed[s] & 63;
    *min = packed[s + 4] & 63;
  } else {
    *scale = (packed[s + 4] & 15) | ((packed[s - 4] >> 6) << 4);
    *min = (packed[s + 4] >> 4) | ((packed[s] >> 6) << 4);
  }
}

void k4_pack_scale_mins(const uint8_t* scale, const uint8_t* min, uint8_t* packed) {
  for (int s = 0; s < 4; ++s) {
    packed[s] = scale[s];
    packed[s + 4] = min[s];
  }
  for (int s = 4; s < kSub32; ++s) {
    packed[s + 4] = uint8_t((scale[s] & 15) | ((min[s] & 15) << 4));
    packed[s - 4] = uint8_t(packed[s - 4] | ((scale[s] >> 4) << 6));
    packed[s] = uint8_t(packed[s] | ((min[s] >> 4) << 6));
  }
}

// Signed 6-bit scale s (0..15) of Q3_K, still offset by 32.
int q3_scale(const uint8_t* packed, int s) {
  const int low = s < 8 ? (packed[s] & 15) : (packed[s - 8] >> 4);
  const int high = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
  return low | (high << 4);
}

void q3_pack_scales(const int* stored, uint8_t* packed) {
  std::memset(packed, 0, 12);
  for (int s = 0; s < kSub16; ++s) {
    const int v = stored[s];
    if (s < 8) {
      packed[s] = uint8_t(v & 15);
    } else {
      packed[s - 8] = uint8_t(packed[s - 8] | ((v & 15) << 4));
    }
    packed[8 + s % 4] = uint8_t(packed[8 + s % 4] | ((v >> 4) << (2 * (s / 4))));
  }
}

// 2-bit levels (0..3) of 256 elements into 64 bytes: byte 32h + i holds elements 128h + i,
// +32, +64, +96 in bits 0-1, 2-3, 4-5, 6-7.
void pack_2bit(const uint8_t* levels, uint8_t* qs) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* l = levels + 128 * h;
    for (int i = 0; i < 32; ++i) {
      qs[32 * h + i] = uint8_t(l[i] | (l[i + 32] << 2) | (l[i + 64] << 4) | (l[i + 96] << 6));
    }
  }
}

int unpack_2bit(const uint8_t* qs, int e) {
  const int h = e / 128, k = (e % 128) / 32, i = e % 32;
  return (qs[32 * h + i] >> (2 * k)) & 3;
}

// Weights of the affine sub-block fit of Q4_K/Q5_K without importance: rms of the sub-block plus |x|.
void rms_plus_abs_weights(const float* x, int n, float* w) {
  const float rms = std::sqrt(sum_squares(x, n) / float(n));
  for (int i = 0; i < n; ++i) w[i] = rms + std::fabs(x[i]);
}

void importance_weights(const float* x, const float* importance, int n, float sigma2, float* w) {
  for (int i = 0; i < n; ++i) w[i] = importance[i] * std::sqrt(sigma2 + x[i] * x[i]);
}

constexpr AffineGrid kImportanceGrid{-0.9f, 0.05f, 36, false};

// Shared by Q4_K and Q5_K: affine fits of 8 sub-blocks of 32, 6-bit scales and mins, and the
// levels (0..top) requantized with the stored values. Writes d, dmin and the 12 scale bytes at dst.
void k4_quantize_superblock(const float* x, const float* importance, int top, const AffineGrid& grid,
                            uint8_t* dst, uint8_t* levels) {
  float scales[kSub32], mins[kSub32], w[32];
  float max_scale = 0.0f, max_min = 0.0f;
  const float sigma2 = importance != nullptr ? 2.0f * sum_squares(x, kSuperBlock) / float(kSuperBlock) : 0.0f;
  for (int s = 0; s < kSub32; ++s) {
    const float* xs = x + 32 * s;
    if (importance != nullptr) {
      importance_weights(xs, importance + 32 * s, 32, sigma2, w);
    } else {
      rms_plus_abs_weights(xs, 32, w);
    }
    scales[s] = fit_affine(32, top, xs, w, levels + 32 * s, &mins[s], importance != nullptr ? kImportanceGrid : grid);
    if (scales[s] > max_scale) max_scale = scales[s];
    if (mins[s] > max_min) max_min = mins[s];
  }
  const float inverse_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inverse_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  uint8_t q_scale[kSub32], q_min[kSub32];
  for (int s = 0; s < kSub32; ++s) {
    q_scale[s] = uint8_t(clamp_int(round_even(inverse_scale * scales[s]), 0, 63));
    q_min[s] = uint8_t(clamp_int(round_even(inverse_min * mins[s]), 0, 63));
  }
  write_f16(dst, max_scale / 63.0f);
  write_f16(dst + 2, max_min / 63.0f);
  k4_pack_scale_mins(q_scale, q_min, dst + 4);
  const float d = read_f16(dst), dmin = read_f16(dst + 2);
  for (int s = 0; s < kSub32; ++s) {
    int sc, m;
    k4_scale_min(dst + 4, s, &sc, &m);
    const float ds = d * float(sc);
    if (ds == 0.0f) continue;
    const float ms = dmin * float(m);
    for (int i = 0; i < 32; ++i) {
      levels[32 * s + i] = uint8_t(clamp_int(round_even((x[32 * s + i] + ms) / ds), 0, top));
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dequantization

void dequantize_q2_k(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 84, dst += kSuperBlock) {
    const uint8_t* scales = src;
    const uint8_t* qs = src + 16;
    const float d = read_f16(src + 80), dmin = read_f16(src + 82);
    for (int e = 0; e < kSuperBlock; ++e) {
      const uint8_t sc = scales[e / 16];
      const float dl = d * float(sc & 15), ml = dmin * float(sc >> 4);
      dst[e] = dl * float(unpack_2bit(qs, e)) - ml;
    }
  }
}

void dequantize_q3_k(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 110, dst += kSuperBlock) {
    const uint8_t* hmask = src;
    const uint8_t* qs = src + 32;
    const uint8_t* scales = src + 96;
    const float d = read_f16(src + 108);
    for (int e = 0; e < kSuperBlock; ++e) {
      const float dl = d * float(q3_scale(scales, e / 16) - 32);
      const bool high = (hmask[e % 32] >> (e / 32)) & 1;
      dst[e] = dl * float(unpack_2bit(qs, e) - (high ? 0 : 4));
    }
  }
}

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 144, dst += kSuperBlock) {
    const float d = read_f16(src), dmin = read_f16(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qs = src + 16;
    for (int c = 0; c < 4; ++c) {
      int sc, m;
      k4_scale_min(scales, 2 * c, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      k4_scale_min(scales, 2 * c + 1, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      const uint8_t* q = qs + 32 * c;
      float* y = dst + 64 * c;
      for (int i = 0; i < 32; ++i) {
        y[i] = d1 * float(q[i] & 15) - m1;
        y[32 + i] = d2 * float(q[i] >> 4) - m2;
      }
    }
  }
}

void dequantize_q5_k(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 176, dst += kSuperBlock) {
    const float d = read_f16(src), dmin = read_f16(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qh = src + 16;
    const uint8_t* qs = src + 48;
    for (int c = 0; c < 4; ++c) {
      int sc, m;
      k4_scale_min(scales, 2 * c, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      k4_scale_min(scales, 2 * c + 1, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      const uint8_t* q = qs + 32 * c;
      float* y = dst + 64 * c;
      for (int i = 0; i < 32; ++i) {
        const int low = (q[i] & 15) + (((qh[i] >> (2 * c)) & 1) << 4);
        const int high = (q[i] >> 4) + (((qh[i] >> (2 * c + 1)) & 1) << 4);
        y[i] = d1 * float(low) - m1;
        y[32 + i] = d2 * float(high) - m2;
      }
    }
  }
}

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 210, dst += kSuperBlock) {
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(src + 192);
    const float d = read_f16(src + 208);
    for (int e = 0; e < kSuperBlock; ++e) {
      const int h = e / 128, k = (e % 128) / 32, i = e % 32;
      const uint8_t low_byte = ql[64 * h + i + 32 * (k & 1)];
      const int low = k < 2 ? (low_byte & 15) : (low_byte >> 4);
      const int high = (qh[32 * h + i] >> (2 * k)) & 3;
      dst[e] = d * float(scales[e / 16]) * float((low | (high << 4)) - 32);
    }
  }
}

void dequantize_q8_k(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 292, dst += kSuperBlock) {
    const float d = read_f32(src);
    const auto* q = reinterpret_cast<const int8_t*>(src + 4);
    for (int e = 0; e < kSuperBlock; ++e) dst[e] = d * float(q[e]);
  }
}

// ---------------------------------------------------------------------------------------------
// Quantization

void quantize_q2_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  uint8_t levels[kSuperBlock];
  float w[16], scales[kSub16], mins[kSub16];
  for (int64_t b = 0; b < blocks; ++b, x += kSuperBlock, dst += 84) {
    const float* imp = importance != nullptr ? importance + b * kSuperBlock : nullptr;
    const float sigma2 = imp != nullptr ? sum_squares(x, kSuperBlock) / float(kSuperBlock) : 0.0f;
    float max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < kSub16; ++s) {
      const float* xs = x + 16 * s;
      if (imp != nullptr) {
        importance_weights(xs, imp + 16 * s, 16, sigma2, w);
      } else {
        for (int i = 0; i < 16; ++i) w[i] = std::fabs(xs[i]);
      }
      const AffineGrid grid = imp != nullptr ? kImportanceGrid : AffineGrid{-0.5f, 0.1f, 15, true};
      scales[s] = fit_affine(16, 3, xs, w, levels + 16 * s, &mins[s], grid);
      if (scales[s] > max_scale) max_scale = scales[s];
      if (mins[s] > max_min) max_min = mins[s];
    }
    uint8_t* packed = dst;
    for (int s = 0; s < kSub16; ++s) {
      const int sc = max_scale > 0.0f ? clamp_int(round_even(15.0f / max_scale * scales[s]), 0, 15) : 0;
      const int m = max_min > 0.0f ? clamp_int(round_even(15.0f / max_min * mins[s]), 0, 15) : 0;
      packed[s] = uint8_t(sc | (m << 4));
    }
    write_f16(dst + 80, max_scale > 0.0f ? max_scale / 15.0f : 0.0f);
    write_f16(dst + 82, max_min > 0.0f ? max_min / 15.0f : 0.0f);
    const float d = read_f16(dst + 80), dmin = read_f16(dst + 82);
    for (int s = 0; s < kSub16; ++s) {
      const float ds = d * float(packed[s] & 15);
      if (ds == 0.0f) continue;
      const float ms = dmin * float(packed[s] >> 4);
      for (int i = 0; i < 16; ++i) levels[16 * s + i] = uint8_t(clamp_int(round_even((x[16 * s + i] + ms) / ds), 0, 3));
    }
    pack_2bit(levels, dst + 16);
  }
}

void quantize_q3_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  uint8_t levels[kSuperBlock];
  float scales[kSub16], w[16];
  for (int64_t b = 0; b < blocks; ++b, x += kSuperBlock, dst += 110) {
    const float* imp = importance != nullptr ? importance + b * kSuperBlock : nullptr;
    const float sigma2 = imp != nullptr ? 2.0f * sum_squares(x, kSuperBlock) / float(kSuperBlock) : 0.0f;
    float max_scale = 0.0f, max_magnitude = 0.0f;
    for (int s = 0; s < kSub16; ++s) {
      if (imp != nullptr) {
        importance_weights(x + 16 * s, imp + 16 * s, 16, sigma2, w);
        scales[s] = fit_symmetric(16, 4, x + 16 * s, w, levels + 16 * s);
      } else {
        scales[s] = fit_symmetric_refined(16, 4, x + 16 * s, levels + 16 * s);
      }
      if (std::fabs(scales[s]) > max_magnitude) {
        max_magnitude = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    uint8_t* packed = dst + 96;
    int stored[kSub16] = {};
    if (max_scale != 0.0f) {
      const float inverse = -32.0f / max_scale;
      for (int s = 0; s < kSub16; ++s) stored[s] = clamp_int(round_even(inverse * scales[s]), -32, 31) + 32;
      q3_pack_scales(stored, packed);
      write_f16(dst + 108, 1.0f / inverse);
    } else {
      std::memset(packed, 0, 12);
      write_f16(dst + 108, 0.0f);
    }
    const float d = read_f16(dst + 108);
    for (int s = 0; s < kSub16; ++s) {
      const float ds = d * float(q3_scale(packed, s) - 32);
      if (ds == 0.0f) continue;
      for (int i = 0; i < 16; ++i) {
        levels[16 * s + i] = uint8_t(clamp_int(round_even(x[16 * s + i] / ds), -4, 3) + 4);
      }
    }
    uint8_t* hmask = dst;
    std::memset(hmask, 0, 32);
    for (int e = 0; e < kSuperBlock; ++e) {
      if (levels[e] > 3) {
        hmask[e % 32] = uint8_t(hmask[e % 32] | (1 << (e / 32)));
        levels[e] = uint8_t(levels[e] - 4);
      }
    }
    pack_2bit(levels, dst + 32);
  }
}

void quantize_q4_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  uint8_t levels[kSuperBlock];
  for (int64_t b = 0; b < blocks; ++b, x += kSuperBlock, dst += 144) {
    const float* imp = importance != nullptr ? importance + b * kSuperBlock : nullptr;
    k4_quantize_superblock(x, imp, 15, AffineGrid{-1.0f, 0.1f, 20, false}, dst, levels);
    uint8_t* qs = dst + 16;
    for (int c = 0; c < 4; ++c) {
      for (int i = 0; i < 32; ++i) qs[32 * c + i] = uint8_t(levels[64 * c + i] | (levels[64 * c + 32 + i] << 4));
    }
  }
}

void quantize_q5_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  uint8_t levels[kSuperBlock];
  for (int64_t b = 0; b < blocks; ++b, x += kSuperBlock, dst += 176) {
    const float* imp = importance != nullptr ? importance + b * kSuperBlock : nullptr;
    k4_quantize_superblock(x, imp, 31, AffineGrid{-0.5f, 0.1f, 15, false}, dst, levels);
    uint8_t* qh = dst + 16;
    uint8_t* qs = dst + 48;
    std::memset(qh, 0, 32);
    for (int c = 0; c < 4; ++c) {
      for (int i = 0; i < 32; ++i) {
        const int low = levels[64 * c + i], high = levels[64 * c + 32 + i];
        qh[i] = uint8_t(qh[i] | ((low >> 4) << (2 * c)) | ((high >> 4) << (2 * c + 1)));
        qs[32 * c + i] = uint8_t((low & 15) | ((high & 15) << 4));
      }
    }
  }
}

void quantize_q6_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  uint8_t levels[kSuperBlock];
  float scales[kSub16], w[16];
  for (int64_t b = 0; b < blocks; ++b, x += kSuperBlock, dst += 210) {
    const float* imp = importance != nullptr ? importance + b * kSuperBlock : nullptr;
    float max_scale = 0.0f, max_magnitude = 0.0f;
    for (int s = 0; s < kSub16; ++s) {
      const float* xs = x + 16 * s;
      for (int i = 0; i < 16; ++i) w[i] = imp != nullptr ? imp[16 * s + i] : xs[i] * xs[i];
      scales[s] = fit_symmetric(16, 32, xs, w, levels + 16 * s);
      if (std::fabs(scales[s]) > max_magnitude) {
        max_magnitude = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    if (max_magnitude < 1e-15f) {
      std::memset(dst, 0, 210);
      continue;
    }
    const float inverse = -128.0f / max_scale;
    write_f16(dst + 208, 1.0f / inverse);
    auto* packed = reinterpret_cast<int8_t*>(dst + 192);
    for (int s = 0; s < kSub16; ++s) packed[s] = int8_t(clamp_int(round_even(inverse * scales[s]), -128, 127));
    const float d = read_f16(dst + 208);
    for (int s = 0; s < kSub16; ++s) {
      const float ds = d * float(packed[s]);
      if (ds == 0.0f) continue;
      for (int i = 0; i < 16; ++i) {
        levels[16 * s + i] = uint8_t(clamp_int(round_even(x[16 * s + i] / ds), -32, 31) + 32);
      }
    }
    uint8_t* ql = dst;
    uint8_t* qh = dst + 128;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* l = levels + 128 * h;
      for (int i = 0; i < 32; ++i) {
        ql[64 * h + i] = uint8_t((l[i] & 15) | ((l[i + 64] & 15) << 4));
        ql[64 * h + 32 + i] = uint8_t((l[i + 32] & 15) | ((l[i + 96] & 15) << 4));
        qh[32 * h + i] = uint8_t((l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) | ((l[i + 96] >> 4) << 6));
      }
    }
  }
}

void quantize_q8_k(const float* x, uint8_t* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, x += kSuperBlock, dst += 292) {
    float magnitude = 0.0f, extreme = 0.0f;
    for (int e = 0; e < kSuperBlock; ++e) {
      if (std::fabs(x[e]) > magnitude) {
        magnitude = std::fabs(x[e]);
        extreme = x[e];
      }
    }
    std::memset(dst, 0, 292);
    if (magnitude == 0.0f) continue;
    const float inverse = -127.0f / extreme;
    auto* q = reinterpret_cast<int8_t*>(dst + 4);
    for (int e = 0; e < kSuperBlock; ++e) q[e] = int8_t(clamp_int(round_even(inverse * x[e]), -128, 127));
    for (int g = 0; g < 16; ++g) {
      int16_t sum = 0;
      for (int i = 0; i < 16; ++i) sum = int16_t(sum + q[16 * g + i]);
      std::memcpy(dst + 260 + 2 * g, &sum, 2);
    }
    const float d = 1.0f / inverse;
    std::memcpy(dst, &d, 4);
  }
}

}  // namespace slm::quant_detail
