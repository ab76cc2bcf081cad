// IQ4_NL and IQ4_XS: 4-bit codes into a fixed table of 16 non-uniformly spaced values (denser near
// zero, where weights are), times a scale.
//
// Layouts (bytes; little-endian):
//   IQ4_NL  18  = d f16 | qs u8[16]
//           x[j] = d * T[qs[j] & 15], x[j+16] = d * T[qs[j] >> 4]          (j < 16)
//   IQ4_XS  136 = d f16 | scales_h u16 | scales_l u8[4] | qs u8[128]
//           8 sub-blocks of 32, each with a 6-bit scale ls (stored + 32): low 4 bits in
//           scales_l[s / 2] (low nibble for even s), high 2 bits at bit 2s of scales_h;
//           x[32s + j] = (d * (ls - 32)) * T[qs[16s + j] & 15], x[32s + 16 + j] with >> 4
// T = kIq4NonLinearValues.
//
// Quantizer: per 32 elements, the scale that maps the value of largest magnitude onto the table's
// end, then 15 candidate scales around it; each gets the weighted least-squares scale for its
// nearest-entry codes (weights x^2, or importance * sqrt(sigma2 + x^2)), the best one wins.
// IQ4_XS then rounds the 8 sub-block scales to 6 bits against one super-block scale and
// re-picks the codes.
#include <cmath>

#include "slm/format/quant.hpp"
#include "slm/format/quant_internal.hpp"

namespace slm {

const int8_t kIq4NonLinearValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

namespace quant_detail {
namespace {

const int8_t* const kTable = kIq4NonLinearValues;
constexpr int kTries = 7;  // candidates: 2 * kTries + 1 around the extreme-value scale

// Best scale for the 32 values of xs (weights w); codes of the winning candidate are not kept:
// the caller re-picks them for the scale it stores.
float fit_block(const float* xs, const float* w) {
  float magnitude = 0.0f, extreme = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    if (std::fabs(xs[j]) > magnitude) {
      magnitude = std::fabs(xs[j]);
      extreme = xs[j];
    }
  }
  if (magnitude < 1e-15f) return 0.0f;
  auto sums = [&](float inverse, float* sum_qx, float* sum_qq) {
    float qx = 0.0f, qq = 0.0f;
    for (int j = 0; j < kBlock; ++j) {
      const float q = float(kTable[nearest_index16(kTable, inverse * xs[j])]);
      qx += w[j] * q * xs[j];
      qq += w[j] * q * q;
    }
    *sum_qx = qx;
    *sum_qq = qq;
  };
  float sum_qx, sum_qq;
  float d = -extreme / float(kTable[0]);  // the extreme value lands on T[0] or, negated, near T[15]
  sums(1.0f / d, &sum_qx, &sum_qq);
  d = sum_qq > 0.0f ? sum_qx / sum_qq : 0.0f;
  float best = d * sum_qx;
  for (int k = -kTries; k <= kTries; ++k) {
    sums((float(k) + float(kTable[0])) / extreme, &sum_qx, &sum_qq);
    if (sum_qq > 0.0f && sum_qx * sum_qx > best * sum_qq) {
      d = sum_qx / sum_qq;
      best = d * sum_qx;
    }
  }
  return d;
}

void block_weights(const float* xs, const float* importance, float sigma2, float* w) {
  for (int j = 0; j < kBlock; ++j) {
    w[j] = importance != nullptr ? importance[j] * std::sqrt(sigma2 + xs[j] * xs[j]) : xs[j] * xs[j];
  }
}

float mean_square_times_two(const float* x, int n) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += x[i] * x[i];
  return sum * (2.0f / float(n));
}

void pack_codes(const float* xs, float scale, uint8_t* qs) {
  const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
  for (int j = 0; j < 16; ++j) {
    const int low = nearest_index16(kTable, inverse * xs[j]);
    const int high = nearest_index16(kTable, inverse * xs[j + 16]);
    qs[j] = uint8_t(low | (high << 4));
  }
}

}  // namespace

void dequantize_iq4_nl(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 18, dst += kBlock) {
    const float d = read_f16(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      dst[j] = d * float(kTable[qs[j] & 15]);
      dst[j + 16] = d * float(kTable[qs[j] >> 4]);
    }
  }
}

void dequantize_iq4_xs(const uint8_t* src, float* dst, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, src += 136, dst += kSuperBlock) {
    const float d = read_f16(src);
    const uint16_t scales_h = read_u16(src + 2);
    const uint8_t* scales_l = src + 4;
    const uint8_t* qs = src + 8;
    for (int s = 0; s < 8; ++s) {
      const int ls = ((scales_l[s / 2] >> (4 * (s % 2))) & 15) | (((scales_h >> (2 * s)) & 3) << 4);
      const float dl = d * float(ls - 32);
      for (int j = 0; j < 16; ++j) {
        dst[32 * s + j] = dl * float(kTable[qs[16 * s + j] & 15]);
        dst[32 * s + 16 + j] = dl * float(kTable[qs[16 * s + j] >> 4]);
      }
    }
  }
}

void quantize_iq4_nl(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  float w[kBlock];
  for (int64_t b = 0; b < blocks; ++b, x += kBlock, dst += 18) {
    const float* imp = importance != nullptr ? importance + b * kBlock : nullptr;
    block_weights(x, imp, imp != nullptr ? mean_square_times_two(x, kBlock) : 0.0f, w);
    const float d = fit_block(x, w);
    write_f16(dst, d);
    pack_codes(x, d, dst + 2);
  }
}

void quantize_iq4_xs(const float* x, uint8_t* dst, int64_t blocks, const float* importance) {
  float w[kBlock], scales[8];
  for (int64_t b = 0; b < blocks; ++b, x += kSuperBlock, dst += 136) {
    const float* imp = importance != nullptr ? importance + b * kSuperBlock : nullptr;
    const float sigma2 = imp != nullptr ? mean_square_times_two(x, kSuperBlock) : 0.0f;
    float max_scale = 0.0f, max_magnitude = 0.0f;
    for (int s = 0; s < 8; ++s) {
      block_weights(x + 32 * s, imp != nullptr ? imp + 32 * s : nullptr, sigma2, w);
      scales[s] = fit_block(x + 32 * s, w);
      if (std::fabs(scales[s]) > max_magnitude) {
        max_magnitude = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    // One super-block scale; sub-block scales become integers in [-32, 31] of it.
    const float d = -max_scale / 32.0f;
    write_f16(dst, d);
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t scales_h = 0;
    uint8_t* scales_l = dst + 4;
    std::memset(scales_l, 0, 4);
    for (int s = 0; s < 8; ++s) {
      const int l = clamp_int(round_even(inverse * scales[s]), -32, 31);
      pack_codes(x + 32 * s, d * float(l), dst + 8 + 16 * s);
      const int stored = l + 32;
      scales_l[s / 2] = uint8_t(scales_l[s / 2] | ((stored & 15) << (4 * (s % 2))));
      scales_h = uint16_t(scales_h | ((stored >> 4) << (2 * s)));
    }
    std::memcpy(dst + 2, &scales_h, 2);
  }
}

}  // namespace quant_detail
}  // namespace slm
