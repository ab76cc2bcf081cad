// Device helpers shared by the matrix kernels (matvec.cu, matvec_int8.cu): a matrix's planes, loads,
// byte access without local memory, warp sums, the Q4_K scale unpacking.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "slm/backend/cuda/cuda.hpp"
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

__device__ __forceinline__ uint4 load16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

__device__ __forceinline__ float half_bits(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}

// Byte n (0..15, known only at run time) of v, without a local-memory array.
__device__ __forceinline__ uint32_t byte_at(const uint4& v, int n) { return (word(v, n >> 2) >> (8 * (n & 3))) & 0xffu; }

// Scale and minimum (6 bits each) of sub-block s of a Q4_K super-block; header = the block's first
// 16 bytes (d, dmin, 12 bytes of packed scales).
__device__ __forceinline__ void q4k_scale_min(const uint4& header, int s, int* scale, int* min) {
  // scales byte n is byte n + 4 of the header
  if (s < 4) {
    *scale = int(byte_at(header, 4 + s) & 63);
    *min = int(byte_at(header, 8 + s) & 63);
  } else {
    const uint32_t low = byte_at(header, 8 + s);
    *scale = int((low & 15) | ((byte_at(header, s) >> 6) << 4));
    *min = int((low >> 4) | ((byte_at(header, 4 + s) >> 6) << 4));
  }
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
