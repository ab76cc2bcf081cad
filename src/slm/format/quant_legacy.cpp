// The 32-element block formats: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1.
//
// Layouts (bytes; f16 little-endian):
//   Q8_0  34 = d f16 | q int8[32]                       x[j] = q[j] * d
//   Q4_0  18 = d f16 | qs u8[16]                        x[j] = ((qs[j] & 15) - 8) * d,
//                                                       x[j+16] = ((qs[j] >> 4) - 8) * d
//   Q4_1  20 = d f16 | m f16 | qs u8[16]                x[j] = (qs[j] & 15) * d + m, x[j+16] with >> 4
//   Q5_0  22 = d f16 | qh u32 | qs u8[16]               5-bit q: low 4 bits as Q4_0, bit 4 of element
//                                                       j (0..31) is bit j of qh; x = (q - 16) * d
//   Q5_1  24 = d f16 | m f16 | qh u32 | qs u8[16]       x = q * d + m
// The low nibbles of qs hold elements 0..15, the high nibbles 16..31.
//
// Reference quantizers (without importance) follow the formats' reference rounding: Q8_0 rounds
// x / d half away from zero with d = max|x| / 127; Q4_0/Q5_0 take d = (the value of largest
// magnitude) / -8 (/ -16) and round x / d + 8 (+ 16) half up; Q4_1/Q5_1 take d = (max - min) / 15
// (/ 31), m = min. With importance, the symmetric formats use a weighted scale search and the
// affine ones a weighted (scale, minimum) search.
#include <cmath>

#include "slm/format/quant_internal.hpp"

namespace slm::quant_detail {
namespace {

constexpr int kHalf = kBlock / 2;

// Weights for an importance-guided search: importance * sqrt(sigma2 + x^2), sigma2 the mean square
// of the whole row (an element's error matters more where both the importance and the value are large).
void importance_weights(const float* x, const float* importance, int n, float sigma2, float* w) {
  for (int i = 0; i < n; ++i) w[i] = importance[i] * std::sqrt(sigma2 + x[i] * x[i]);
}

float row_mean_square(const float* x, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  return sum / float(n);
}

// Packs 32 levels (0..15) two per byte: element j low nibble, element j + 16 high nibble.
void pack_nibbles(const uint8_t* levels, uint8_t* qs) {
  for (int j = 0; j < kHalf; ++j) qs[j] = uint8_t((levels[j] & 15) | ((levels[j + kHalf] & 15) << 4));
}

// Packs 32 five-bit levels: low 4 bits as nibbles, bit 4 of element j into bit j of a u32.
void pack_five_bits(const uint8_t* levels, uint8_t* qh, uint8_t* qs) {
  pack_nibbles(levels, qs);
  uint32_t high = 0;
  for (int j = 0; j < kBlock; ++j) high |= uint32_t((levels[j] >> 4) & 1) << j;
  std::memcpy(qh, &high, 4);
}

int five_bit_level(const uint8_t* qs, uint32_t qh, int j) {
  const int low = j < kHalf ? (qs[j] & 15) : (qs[j - kHalf] >> 4);
  return low | int((qh >> j) & 1) << 4;
}

// Reference symmetric rounding of Q4_0/Q5_0: d = extreme / -half_levels; level = x / d + half,
// rounded half up (truncation of a value >= 0), capped at the top level.
float symmetric_reference(const float* x, int levels_count, uint8_t* levels) {
  float magnitude = 0.0f, extreme = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    if (magnitude < std::fabs(x[j])) {
      magnitude = std::fabs(x[j]);
      extreme = x[j];
    }
  }
  const int half = levels_count / 2;
  const float d = extreme / -float(half);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    const int q = int(x[j] * inverse + (float(half) + 0.5f));  // >= 0 up to rounding, truncation = half up
    levels[j] = uint8_t(clamp_int(q, 0, levels_count - 1));
  }
  return d;
}

// Reference affine rounding of Q4_1/Q5_1: d = (max - min) / top, m = min, level = (x - min) / d
// rounded half up.
float affine_reference(const float* x, int top, uint8_t* levels, float* minimum) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < kBlock; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  const float d = (hi - lo) / float(top);
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    const int q = int((x[j] - lo) * inverse + 0.5f);
    levels[j] = uint8_t(clamp_int(q, 0, top));
  }
  *minimum = lo;
  return d;
}

// Importance-guided versions: the weighted searches of quant_search.cpp.
float symmetric_weighted(const float* x, const float* importance, float sigma2, int levels_count, uint8_t* levels) {
  float w[kBlock];
  importance_weights(x, importance, kBlock, sigma2, w);
  return fit_symmetric(kBlock, levels_count / 2, x, w, levels);
}

float affine_weighted(const float* x, const float* importance, float sigma2, int top, uint8_t* levels,
                      float* minimum) {
  float w[kBlock];
  importance_weights(x, importance, kBlock, sigma2, w);
  float offset;
  const float d = fit_affine(kBlock, top, x, w, levels, &offset, AffineGrid{-0.9f, 0.05f, 36, false});
  *minimum = -offset;
  return d;
}

}  // namespace

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 34, dst += kBlock) {
    const float d = read_f16(src);
    const auto* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kBlock; ++j) dst[j] = float(q[j]) * d;
  }
}

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 18, dst += kBlock) {
    const float d = read_f16(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kHalf; ++j) {
      dst[j] = float((qs[j] & 15) - 8) * d;
      dst[j + kHalf] = float((qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 20, dst += kBlock) {
    const float d = read_f16(src);
    const float m = read_f16(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < kHalf; ++j) {
      dst[j] = float(qs[j] & 15) * d + m;
      dst[j + kHalf] = float(qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 22, dst += kBlock) {
    const float d = read_f16(src);
    const uint32_t qh = read_u32(src + 2);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < kBlock; ++j) dst[j] = float(five_bit_level(qs, qh, j) - 16) * d;
  }
}

void dequantize_q5_1(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 24, dst += kBlock) {
    const float d = read_f16(src);
    const float m = read_f16(src + 2);
    const uint32_t qh = read_u32(src + 4);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < kBlock; ++j) dst[j] = float(five_bit_level(qs, qh, j)) * d + m;
  }
}

void quantize_q8_0(const float* x, uint8_t* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, x += kBlock, dst += 34) {
    float magnitude = 0.0f;
    for (int j = 0; j < kBlock; ++j) magnitude = std::fmax(magnitude, std::fabs(x[j]));
    const float d = magnitude / 127.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    write_f16(dst, d);
    auto* q = reinterpret_cast<int8_t*>(dst + 2);
    for (int j = 0; j < kBlock; ++j) q[j] = int8_t(clamp_int(int(std::round(x[j] * inverse)), -127, 127));
  }
}

void quantize_q4_0(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  const float sigma2 = importance != nullptr ? row_mean_square(x, blocks * kBlock) : 0.0f;
  uint8_t levels[kBlock];
  for (int64_t b = 0; b < blocks; ++b, x += kBlock, dst += 18) {
    const float d = importance != nullptr ? symmetric_weighted(x, importance + b * kBlock, sigma2, 16, levels)
                                          : symmetric_reference(x, 16, levels);
    write_f16(dst, d);
    pack_nibbles(levels, dst + 2);
  }
}

void quantize_q5_0(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  const float sigma2 = importance != nullptr ? row_mean_square(x, blocks * kBlock) : 0.0f;
  uint8_t levels[kBlock];
  for (int64_t b = 0; b < blocks; ++b, x += kBlock, dst += 22) {
    const float d = importance != nullptr ? symmetric_weighted(x, importance + b * kBlock, sigma2, 32, levels)
                                          : symmetric_reference(x, 32, levels);
    write_f16(dst, d);
    pack_five_bits(levels, dst + 2, dst + 6);
  }
}

void quantize_q4_1(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  const float sigma2 = importance != nullptr ? row_mean_square(x, blocks * kBlock) : 0.0f;
  uint8_t levels[kBlock];
  for (int64_t b = 0; b < blocks; ++b, x += kBlock, dst += 20) {
    float minimum;
    const float d = importance != nullptr
                        ? affine_weighted(x, importance + b * kBlock, sigma2, 15, levels, &minimum)
                        : affine_reference(x, 15, levels, &minimum);
    write_f16(dst, d);
    write_f16(dst + 2, minimum);
    pack_nibbles(levels, dst + 4);
  }
}

void quantize_q5_1(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  const float sigma2 = importance != nullptr ? row_mean_square(x, blocks * kBlock) : 0.0f;
  uint8_t levels[kBlock];
  for (int64_t b = 0; b < blocks; ++b, x += kBlock, dst += 24) {
    float minimum;
    const float d = importance != nullptr
                        ? affine_weighted(x, importance + b * kBlock, sigma2, 31, levels, &minimum)
                        : affine_reference(x, 31, levels, &minimum);
    write_f16(dst, d);
    write_f16(dst + 2, minimum);
    pack_five_bits(levels, dst + 4, dst + 8);
  }
}

}  // namespace slm::quant_detail
