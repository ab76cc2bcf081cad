// Pieces shared by the block-format files (quant_legacy.cpp, quant_k.cpp, quant_iq4.cpp): field
// access, rounding, the scale searches, and each family's per-block entry points. Blocks are read
// and written through byte offsets (memcpy), never through struct casts, so any alignment works.
#pragma once

#include <cstdint>
#include <cstring>

#include "slm/util/fp16.hpp"

namespace slm::quant_detail {

constexpr int kBlock = 32;        // elements per block of Q4_0..Q8_0 and IQ4_NL
constexpr int kSuperBlock = 256;  // elements per super-block of the K-quants and IQ4_XS

inline float read_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

inline void write_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// The f16 value `v` is stored as, read back: quantizers requantize with the stored scale.
inline float f16_rounded(float v) { return f16_to_f32(f32_to_f16(v)); }

inline float read_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

inline uint32_t read_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline uint16_t read_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Nearest integer, ties to even, for |x| < 2^22 (larger magnitudes are clamped first; a NaN gives
// some integer, never undefined behaviour). Adding 1.5 * 2^23 leaves the rounded integer in the
// low mantissa bits.
inline int round_even(float x) {
  constexpr float kLimit = 4194303.0f;
  if (x > kLimit) x = kLimit;
  if (x < -kLimit) x = -kLimit;
  const float biased = x + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &biased, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Scale searches (quant_search.cpp). Each picks quantized levels L for n values x and returns the
// scale that minimises a weighted squared (or absolute) error over a small grid of candidates.

// Symmetric: x ~ scale * l with integer l in [-nmax, nmax - 1]; levels[i] = l + nmax.
// Candidates: the scale that maps the largest-magnitude value to -nmax, and 18 neighbours of it
// (nmax +- 0.1 k); each candidate's levels get their weighted least-squares scale
// sum(w x l) / sum(w l^2), and the candidate with the largest sum(w x l)^2 / sum(w l^2) (the
// smallest weighted error) wins. w: n weights.
float fit_symmetric(int n, int nmax, const float* x, const float* w, uint8_t* levels);

// Symmetric with coordinate refinement and weights x^2: starting from the levels of the
// max-magnitude scale, moves one level at a time to the value that most improves the fit, at
// most 5 passes. levels[i] = l + nmax with l in [-nmax, nmax - 1].
float fit_symmetric_refined(int n, int nmax, const float* x, uint8_t* levels);

// Affine: x ~ scale * l - offset with l in [0, nmax], offset >= 0 (the minimum is never above 0).
// Candidates: inverse scales (nmax + first + step * k) / (max - min) for k = 0..steps; for each,
// the levels get their weighted least-squares (scale, minimum) pair (a 2x2 system), and the pair
// with the smallest weighted error (squared, or absolute when `absolute_error`) wins.
struct AffineGrid {
  float first;
  float step;
  int steps;
  bool absolute_error;
};
float fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* levels, float* offset,
                 const AffineGrid& grid);

// Index of the entry of a sorted table of 16 values nearest to x (ties go to the larger value).
int nearest_index16(const int8_t* table, float x);

// Family entry points: `blocks` consecutive blocks (or super-blocks) of the format.
// importance: null, or one non-negative weight per element.
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q4_1(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q5_0(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q5_1(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t blocks);
void quantize_q4_0(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q4_1(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q5_0(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q5_1(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q8_0(const float* x, uint8_t* dst, int64_t blocks);

void dequantize_q2_k(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q3_k(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_q8_k(const uint8_t* src, float* dst, int64_t blocks);
void quantize_q2_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q3_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q4_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q5_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q6_k(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_q8_k(const float* x, uint8_t* dst, int64_t blocks);

void dequantize_iq4_nl(const uint8_t* src, float* dst, int64_t blocks);
void dequantize_iq4_xs(const uint8_t* src, float* dst, int64_t blocks);
void quantize_iq4_nl(const float* x, uint8_t* dst, int64_t blocks, const float* importance);
void quantize_iq4_xs(const float* x, uint8_t* dst, int64_t blocks, const float* importance);

}  // namespace slm::quant_detail
