// IEEE half and bfloat16 conversions (exact, round-to-nearest-even), scalar and portable.
#pragma once

#include <cstdint>
#include <cstring>

namespace slm {

inline float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint32_t f32_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    if (mantissa == 0) return bits_to_f32(sign);
    // subnormal: normalise
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3ffu;
    return bits_to_f32(sign | uint32_t(127 - 15 + 1 - shift) << 23 | mantissa << 13);
  }
  if (exponent == 31) return bits_to_f32(sign | 0x7f800000u | mantissa << 13);
  return bits_to_f32(sign | (exponent + 127 - 15) << 23 | mantissa << 13);
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {                                   // subnormal or zero in half
    if (abs < 0x33000000u) return uint16_t(sign);          // below half of the smallest subnormal
    // value / 2^-24 = mantissa * 2^(exponent - 126): drop (126 - exponent) bits, round to even.
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // 14..24
    const uint32_t kept = mantissa >> shift;
    const uint32_t rem = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    uint32_t rounded = kept;
    if (rem > half || (rem == half && (kept & 1u))) ++rounded;
    return uint16_t(sign | rounded);
  }
  // normal
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  rounded -= (127u - 15u) << 23;
  return uint16_t(sign | (rounded >> 13));
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet nan
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace slm
