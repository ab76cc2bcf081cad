// Device helpers shared by the matrix kernels (matvec.cu, matvec_int8.cu): a matrix's planes, loads,
// byte access without local memory, warp sums, Q4_K block metadata.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/grid_dependency.cuh"
#include "slm/backend/cuda/internal.hpp"

namespace slm::cuda::kernels {

struct Matrix {
  const uint8_t* data;
  const uint8_t* plane1;
  const uint8_t* plane2;
  int64_t n_out;
  int64_t n_in;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// acc[r] += rows[r] . x over the pieces c0, c0 + stride, ... of the rows. The first pieces' weights
// are loaded before wait_for_previous_kernel() (no kernel writes weights, so under programmatic
// launch they arrive while the previous kernel finishes), then prepare() runs (it may read what that
// kernel wrote); each iteration loads the next pieces before it multiplies the current ones.
template <typename Format, int kR, typename X, typename Prepare>
__device__ __forceinline__ void dot_rows(const Matrix& m, const int64_t (&rows)[kR], int64_t c0, int64_t stride,
                                         const X& x, float (&acc)[kR], Prepare&& prepare) {
  const int64_t n = Format::pieces(m);
  typename Format::Piece cur[kR];
  if (c0 < n) {
#pragma unroll
    for (int r = 0; r < kR; ++r) cur[r] = Format::load(m, rows[r], c0);
  }
  wait_for_previous_kernel();
  prepare();
  for (int64_t c = c0; c < n; c += stride) {
    typename Format::Piece next[kR];
    const bool more = c + stride < n;
    if (more) {
#pragma unroll
      for (int r = 0; r < kR; ++r) next[r] = Format::load(m, rows[r], c + stride);
    }
    const typename Format::X xv = Format::load_x(x, c);
#pragma unroll
    for (int r = 0; r < kR; ++r) acc[r] = Format::dot(cur[r], c, xv, acc[r]);
    if (more) {
#pragma unroll
      for (int r = 0; r < kR; ++r) cur[r] = next[r];
    }
  }
}

__device__ __forceinline__ uint4 load16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

__device__ __forceinline__ float half_bits(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}

// Byte n (0..15, known only at run time) of v, without a local-memory array.
__device__ __forceinline__ uint32_t byte_at(const uint4& v, int n) { return (word(v, n >> 2) >> (8 * (n & 3))) & 0xffu; }

// Q4_K metadata of super-block `block` for the sub-blocks 2 * pair and 2 * pair + 1 (planes of the
// DeviceMatrix: unpacked scales and minimums, then (d, dmin)).
struct Q4KMeta {
  uint16_t scales;  // low byte: sub-block 2 * pair, high byte: 2 * pair + 1
  uint16_t mins;
  uint32_t dm;  // (d, dmin) f16
};

__device__ __forceinline__ Q4KMeta q4k_meta(const Matrix& m, int64_t block, int pair) {
  const auto* scale_mins = reinterpret_cast<const unsigned short*>(m.plane1 + block * 16);
  return {__ldg(scale_mins + pair), __ldg(scale_mins + 4 + pair),
          __ldg(reinterpret_cast<const unsigned int*>(m.plane2) + block)};
}

__device__ __forceinline__ float2 q4k_dm(uint32_t dm) {
  return __half22float2(*reinterpret_cast<const __half2*>(&dm));
}

// Bit 4 of each byte k (0..3) set from bit k of `bits` (the fifth bits of Q5 formats, 4 at a time).
__device__ __forceinline__ uint32_t spread_bit4(uint32_t bits) {
  return ((bits & 1u) << 4) | ((bits & 2u) << 11) | ((bits & 4u) << 18) | ((bits & 8u) << 25);
}

// The IQ4 table (kIq4NonLinearValues) as 4 words of packed int8, and the look-up of 4 codes (bytes
// 0..15) into 4 signed bytes: two byte permutes over the table's halves, then a per-byte choice.
struct Iq4Table {
  uint32_t w[4];
};
__device__ __forceinline__ Iq4Table iq4_table() {
  // -127, -104, -83, -65 | -49, -35, -22, -10 | 1, 13, 25, 38 | 53, 69, 89, 113
  return {{0xBFAD9881u, 0xF6EADDCFu, 0x26190D01u, 0x71594535u}};
}
__device__ __forceinline__ uint32_t iq4_lookup(const Iq4Table& t, uint32_t codes) {
  const uint32_t low3 = codes & 0x07070707u;
  const uint32_t packed = low3 | (low3 >> 4);                       // byte 0: k0 | k1 << 4, byte 2: k2 | k3 << 4
  const uint32_t selector = (packed & 0xffu) | ((packed >> 8) & 0xff00u);  // nibble k selects byte k
  const uint32_t lo = __byte_perm(t.w[0], t.w[1], selector);
  const uint32_t hi = __byte_perm(t.w[2], t.w[3], selector);
  const uint32_t upper = ((codes >> 3) & 0x01010101u) * 0xffu;  // bytes whose code is 8..15
  return (lo & ~upper) | (hi & upper);
}

inline Matrix view(const DeviceMatrix& w) {
  const auto* base = static_cast<const uint8_t*>(w.data.data());
  return {base, base + w.plane1, base + w.plane2, w.n_out, w.n_in};
}

inline void check_matrix(const DeviceMatrix& w) {
  if (w.data.data() == nullptr || w.n_out <= 0 || w.n_in <= 0) {
    detail::fail_argument("expected an uploaded matrix, found an empty one");
  }
}

}  // namespace slm::cuda::kernels
