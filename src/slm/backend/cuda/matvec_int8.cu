// Matrix-vector products of block-quantized weights with activations rounded to 8 bits per block of
// 32 (QuantizedVector), through 4-way integer dot products (dp4a): four weights per instruction with
// no per-element conversion to float, and a quarter of the activation bytes of the f32 kernels
// (matvec.cu), whose conversions and activation loads, not memory, bound them.
//
// As in matvec.cu, a block owns kRows rows, its warps split every row's 16-byte pieces, and each lane
// loads the piece of all the block's rows and the matching activations once before using them.
#include <cuda_fp16.h>

#include <cstdint>
#include <string>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/grid_dependency.cuh"
#include "slm/backend/cuda/internal.hpp"
#include "slm/backend/cuda/kernels.cuh"

namespace slm::cuda {

namespace {

using namespace kernels;

constexpr int kWarpsPerBlock = 4;

struct XQ {
  const int8_t* q;    // [n]
  const float* d;     // [n / 32]
  const float* sums;  // [n / 16]
};

__device__ __forceinline__ uint4 load_q(const int8_t* q, int64_t byte_offset) {
  return __ldg(reinterpret_cast<const uint4*>(q + byte_offset));
}

__device__ __forceinline__ int dot16(const uint4& w, const uint4& x) {
  int acc = __dp4a(int(w.x), int(x.x), 0);
  acc = __dp4a(int(w.y), int(x.y), acc);
  acc = __dp4a(int(w.z), int(x.z), acc);
  return __dp4a(int(w.w), int(x.w), acc);
}

__device__ __forceinline__ uint4 map4(const uint4& v, uint32_t mask, int shift, uint32_t minus) {
  return make_uint4(__vsub4((v.x >> shift) & mask, minus), __vsub4((v.y >> shift) & mask, minus),
                    __vsub4((v.z >> shift) & mask, minus), __vsub4((v.w >> shift) & mask, minus));
}

// Q8_0: piece c = 16 int8 weights (elements 16c..16c+15) of block c / 2.
struct Q8 {
  static constexpr int kRows = 4;
  struct Piece {
    uint4 q;
    float d;
  };
  struct X {
    uint4 q;
    float d;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 16; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t piece = row * (m.n_in / 16) + c;
    return {load16(m.data + 16 * piece), half_bits(__ldg(reinterpret_cast<const unsigned short*>(m.plane1) + piece / 2))};
  }
  static __device__ X load_x(const XQ& x, int64_t c) { return {load_q(x.q, 16 * c), __ldg(x.d + c / 2)}; }
  static __device__ float dot(const Piece& p, int64_t, const X& x, float acc) {
    return fmaf(p.d * x.d, float(dot16(p.q, x.q)), acc);
  }
};

// Q4_0: piece c = block c; low nibbles are elements 0..15, high nibbles 16..31, each minus 8.
struct Q4 {
  static constexpr int kRows = 8;
  struct Piece {
    uint4 q;
    float d;
  };
  struct X {
    uint4 low, high;
    float d;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 32) + c;
    return {load16(m.data + 16 * block), half_bits(__ldg(reinterpret_cast<const unsigned short*>(m.plane1) + block))};
  }
  static __device__ X load_x(const XQ& x, int64_t c) {
    return {load_q(x.q, 32 * c), load_q(x.q, 32 * c + 16), __ldg(x.d + c)};
  }
  static __device__ float dot(const Piece& p, int64_t, const X& x, float acc) {
    const int s = dot16(map4(p.q, 0x0f0f0f0fu, 0, 0x08080808u), x.low) +
                  dot16(map4(p.q, 0x0f0f0f0fu, 4, 0x08080808u), x.high);
    return fmaf(p.d * x.d, float(s), acc);
  }
};

// Q4_K: piece c = 16 quant bytes of super-block c / 8 (see Q4KFormat in matvec.cu for the element map);
// the minimum term uses the exact sums of the activations.
struct Q4K {
  static constexpr int kRows = 8;
  struct Piece {
    uint4 q;
    Q4KMeta meta;
  };
  struct X {
    uint4 low, high;
    float d_low, d_high, sum_low, sum_high;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    return {load16(m.data + block * 128 + 16 * (c % 8)), q4k_meta(m, block, int(c % 8) >> 1)};
  }
  static __device__ X load_x(const XQ& x, int64_t c) {
    const int j = int(c % 8);
    const int64_t low = (c / 8) * 256 + 64 * (j >> 1) + 16 * (j & 1);  // first low-nibble element
    return {load_q(x.q, low), load_q(x.q, low + 32), __ldg(x.d + low / 32), __ldg(x.d + low / 32 + 1),
            __ldg(x.sums + low / 16), __ldg(x.sums + low / 16 + 2)};
  }
  static __device__ float dot(const Piece& p, int64_t, const X& x, float acc) {
    const int scale1 = p.meta.scales & 0xff, scale2 = p.meta.scales >> 8;
    const int min1 = p.meta.mins & 0xff, min2 = p.meta.mins >> 8;
    const int s1 = dot16(map4(p.q, 0x0f0f0f0fu, 0, 0u), x.low);
    const int s2 = dot16(map4(p.q, 0x0f0f0f0fu, 4, 0u), x.high);
    const float2 dm = q4k_dm(p.meta.dm);  // (d, dmin)
    const float q_part = fmaf(float(scale1) * x.d_low, float(s1), float(scale2) * x.d_high * float(s2));
    const float m_part = fmaf(float(min1), x.sum_low, float(min2) * x.sum_high);
    return fmaf(dm.x, q_part, fmaf(-dm.y, m_part, acc));
  }
};

// Q6_K (planes): piece c as Q6KFormat in matvec.cu; values q - 32 as signed bytes.
struct Q6K {
  static constexpr int kRows = 4;
  struct Piece {
    uint4 ql, qh, scales;
    float d;
  };
  struct X {
    uint4 low, high;
    float d_low, d_high;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    const int j = int(c % 8);
    const int h = j >> 2, mm = (j >> 1) & 1, n = j & 1;
    const uint8_t* bits = m.data + block * 192;
    return {load16(bits + 64 * h + 32 * mm + 16 * n), load16(bits + 128 + 32 * h + 16 * n),
            load16(m.plane1 + block * 16),
            half_bits(__ldg(reinterpret_cast<const unsigned short*>(m.plane2) + block))};
  }
  static __device__ X load_x(const XQ& x, int64_t c) {
    const int j = int(c % 8);
    const int64_t low = (c / 8) * 256 + 128 * (j >> 2) + 32 * ((j >> 1) & 1) + 16 * (j & 1);
    return {load_q(x.q, low), load_q(x.q, low + 64), __ldg(x.d + low / 32), __ldg(x.d + low / 32 + 2)};
  }
  static __device__ float dot(const Piece& p, int64_t c, const X& x, float acc) {
    const int j = int(c % 8);
    const int h = j >> 2, mm = (j >> 1) & 1, n = j & 1;
    const int sub = 8 * h + 2 * mm + n;
    const float scale1 = float(int8_t(byte_at(p.scales, sub)));
    const float scale2 = float(int8_t(byte_at(p.scales, sub + 4)));
    const int shift = 2 * mm;
    uint4 q1, q2;
    q1.x = (p.ql.x & 0x0f0f0f0fu) | (((p.qh.x >> shift) & 0x03030303u) << 4);
    q1.y = (p.ql.y & 0x0f0f0f0fu) | (((p.qh.y >> shift) & 0x03030303u) << 4);
    q1.z = (p.ql.z & 0x0f0f0f0fu) | (((p.qh.z >> shift) & 0x03030303u) << 4);
    q1.w = (p.ql.w & 0x0f0f0f0fu) | (((p.qh.w >> shift) & 0x03030303u) << 4);
    q2.x = ((p.ql.x >> 4) & 0x0f0f0f0fu) | (((p.qh.x >> (shift + 4)) & 0x03030303u) << 4);
    q2.y = ((p.ql.y >> 4) & 0x0f0f0f0fu) | (((p.qh.y >> (shift + 4)) & 0x03030303u) << 4);
    q2.z = ((p.ql.z >> 4) & 0x0f0f0f0fu) | (((p.qh.z >> (shift + 4)) & 0x03030303u) << 4);
    q2.w = ((p.ql.w >> 4) & 0x0f0f0f0fu) | (((p.qh.w >> (shift + 4)) & 0x03030303u) << 4);
    const int s1 = dot16(map4(q1, 0xffffffffu, 0, 0x20202020u), x.low);
    const int s2 = dot16(map4(q2, 0xffffffffu, 0, 0x20202020u), x.high);
    return fmaf(p.d, fmaf(scale1 * x.d_low, float(s1), scale2 * x.d_high * float(s2)), acc);
  }
};

// Q5_0 (planes: qs | qh u32 | d f16 per block): piece c = block c, as Q4_0 with the fifth bits of qh.
struct Q5 {
  static constexpr int kRows = 8;
  struct Piece {
    uint4 q;
    uint32_t qh;
    float d;
  };
  using X = Q4::X;
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 32) + c;
    return {load16(m.data + 16 * block), __ldg(reinterpret_cast<const unsigned int*>(m.plane1) + block),
            half_bits(__ldg(reinterpret_cast<const unsigned short*>(m.plane2) + block))};
  }
  static __device__ X load_x(const XQ& x, int64_t c) { return Q4::load_x(x, c); }
  static __device__ uint32_t level(uint32_t nibbles, uint32_t bits) {
    return __vsub4(nibbles | spread_bit4(bits & 15u), 0x10101010u);
  }
  static __device__ float dot(const Piece& p, int64_t, const X& x, float acc) {
    const uint4 low = make_uint4(level(p.q.x & 0x0f0f0f0fu, p.qh), level(p.q.y & 0x0f0f0f0fu, p.qh >> 4),
                                 level(p.q.z & 0x0f0f0f0fu, p.qh >> 8), level(p.q.w & 0x0f0f0f0fu, p.qh >> 12));
    const uint4 high = make_uint4(level((p.q.x >> 4) & 0x0f0f0f0fu, p.qh >> 16),
                                  level((p.q.y >> 4) & 0x0f0f0f0fu, p.qh >> 20),
                                  level((p.q.z >> 4) & 0x0f0f0f0fu, p.qh >> 24),
                                  level((p.q.w >> 4) & 0x0f0f0f0fu, p.qh >> 28));
    return fmaf(p.d * x.d, float(dot16(low, x.low) + dot16(high, x.high)), acc);
  }
};

// Q5_K (planes as Q5KFormat in matvec.cu): Q4_K with the fifth bits from the qh piece.
struct Q5K {
  static constexpr int kRows = 8;
  struct Piece {
    uint4 q;
    uint4 qh;
    Q4KMeta meta;
  };
  using X = Q4K::X;
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    const int j = int(c % 8);
    const uint8_t* bits = m.data + block * 160;
    return {load16(bits + 16 * j), load16(bits + 128 + 16 * (j & 1)), q4k_meta(m, block, j >> 1)};
  }
  static __device__ X load_x(const XQ& x, int64_t c) { return Q4K::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t c, const X& x, float acc) {
    const int shift = 2 * (int(c % 8) >> 1);
    const uint4 low = map4(p.q, 0x0f0f0f0fu, 0, 0u), high = map4(p.q, 0x0f0f0f0fu, 4, 0u);
    const uint4 bit_low = map4(p.qh, 0x01010101u, shift, 0u), bit_high = map4(p.qh, 0x01010101u, shift + 1, 0u);
    const uint4 q1 = make_uint4(low.x | (bit_low.x << 4), low.y | (bit_low.y << 4), low.z | (bit_low.z << 4),
                                low.w | (bit_low.w << 4));
    const uint4 q2 = make_uint4(high.x | (bit_high.x << 4), high.y | (bit_high.y << 4),
                                high.z | (bit_high.z << 4), high.w | (bit_high.w << 4));
    const int scale1 = p.meta.scales & 0xff, scale2 = p.meta.scales >> 8;
    const int min1 = p.meta.mins & 0xff, min2 = p.meta.mins >> 8;
    const int s1 = dot16(q1, x.low), s2 = dot16(q2, x.high);
    const float2 dm = q4k_dm(p.meta.dm);
    const float q_part = fmaf(float(scale1) * x.d_low, float(s1), float(scale2) * x.d_high * float(s2));
    const float m_part = fmaf(float(min1), x.sum_low, float(min2) * x.sum_high);
    return fmaf(dm.x, q_part, fmaf(-dm.y, m_part, acc));
  }
};

// IQ4_XS (planes as Iq4XsFormat in matvec.cu): piece c = sub-block c % 8, codes looked up as signed bytes.
struct Iq4Xs {
  static constexpr int kRows = 8;
  struct Piece {
    uint4 q;
    float d;  // d * (ls - 32)
  };
  using X = Q4::X;
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    const float d = half_bits(__ldg(reinterpret_cast<const unsigned short*>(m.plane2) + block));
    return {load16(m.data + block * 128 + 16 * (c % 8)), d * float(int8_t(__ldg(m.plane1 + block * 8 + c % 8)))};
  }
  static __device__ X load_x(const XQ& x, int64_t c) { return Q4::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t, const X& x, float acc) {
    const Iq4Table t = iq4_table();
    const uint4 low = make_uint4(iq4_lookup(t, p.q.x & 0x0f0f0f0fu), iq4_lookup(t, p.q.y & 0x0f0f0f0fu),
                                 iq4_lookup(t, p.q.z & 0x0f0f0f0fu), iq4_lookup(t, p.q.w & 0x0f0f0f0fu));
    const uint4 high = make_uint4(iq4_lookup(t, (p.q.x >> 4) & 0x0f0f0f0fu), iq4_lookup(t, (p.q.y >> 4) & 0x0f0f0f0fu),
                                  iq4_lookup(t, (p.q.z >> 4) & 0x0f0f0f0fu), iq4_lookup(t, (p.q.w >> 4) & 0x0f0f0f0fu));
    return fmaf(p.d * x.d, float(dot16(low, x.low) + dot16(high, x.high)), acc);
  }
};

// Q5_1 (planes as Q51Format in matvec.cu): levels 0..31 times d, plus m times the exact block sum.
struct Q51 {
  static constexpr int kRows = 8;
  struct Piece {
    uint4 q;
    uint32_t qh;
    uint32_t dm;
  };
  struct X {
    uint4 low, high;
    float d, sum;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 32) + c;
    return {load16(m.data + 16 * block), __ldg(reinterpret_cast<const unsigned int*>(m.plane1) + block),
            __ldg(reinterpret_cast<const unsigned int*>(m.plane2) + block)};
  }
  static __device__ X load_x(const XQ& x, int64_t c) {
    return {load_q(x.q, 32 * c), load_q(x.q, 32 * c + 16), __ldg(x.d + c), __ldg(x.sums + 2 * c) + __ldg(x.sums + 2 * c + 1)};
  }
  static __device__ uint32_t level(uint32_t nibbles, uint32_t bits) { return nibbles | spread_bit4(bits & 15u); }
  static __device__ float dot(const Piece& p, int64_t, const X& x, float acc) {
    const uint4 low = make_uint4(level(p.q.x & 0x0f0f0f0fu, p.qh), level(p.q.y & 0x0f0f0f0fu, p.qh >> 4),
                                 level(p.q.z & 0x0f0f0f0fu, p.qh >> 8), level(p.q.w & 0x0f0f0f0fu, p.qh >> 12));
    const uint4 high = make_uint4(level((p.q.x >> 4) & 0x0f0f0f0fu, p.qh >> 16),
                                  level((p.q.y >> 4) & 0x0f0f0f0fu, p.qh >> 20),
                                  level((p.q.z >> 4) & 0x0f0f0f0fu, p.qh >> 24),
                                  level((p.q.w >> 4) & 0x0f0f0f0fu, p.qh >> 28));
    const float2 dm = q4k_dm(p.dm);  // (d, m)
    return fmaf(dm.x * x.d, float(dot16(low, x.low) + dot16(high, x.high)), fmaf(dm.y, x.sum, acc));
  }
};

// IQ4_NL (planes as Q4_0): Iq4Xs with one scale per block of 32.
struct Iq4Nl {
  static constexpr int kRows = 8;
  using Piece = Q4::Piece;
  using X = Q4::X;
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) { return Q4::load(m, row, c); }
  static __device__ X load_x(const XQ& x, int64_t c) { return Q4::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t c, const X& x, float acc) {
    return Iq4Xs::dot({p.q, p.d}, c, x, acc);
  }
};

template <typename Format>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) matvec_int8_kernel(Matrix m, XQ x, float* __restrict__ y,
                                                                          bool accumulate) {
  constexpr int kRows = Format::kRows;
  __shared__ float partial[kWarpsPerBlock][kRows];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t first_row = int64_t(blockIdx.x) * kRows;
  int64_t rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = min(first_row + r, m.n_out - 1);  // duplicates are not written
  float acc[kRows] = {};
  dot_rows<Format>(m, rows, int64_t(warp) * 32 + lane, kWarpsPerBlock * 32, x, acc, [] {});
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float sum = warp_sum(acc[r]);
    if (lane == 0) partial[warp][r] = sum;
  }
  __syncthreads();
  if (threadIdx.x < kRows && first_row + threadIdx.x < m.n_out) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarpsPerBlock; ++w) sum += partial[w][threadIdx.x];
    y[first_row + threadIdx.x] = accumulate ? y[first_row + threadIdx.x] + sum : sum;
  }
}

// Rows shorter than the block's lanes (n_pieces < kWarpsPerBlock * 32, e.g. 28 pieces for 896 inputs):
// the kernel above would leave whole warps idle, so here each warp owns kRows / kWarpsPerBlock of the
// block's rows (at least one) and walks all their pieces itself; no shared-memory merge.
template <typename Format>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) matvec_int8_short_kernel(Matrix m, XQ x,
                                                                                float* __restrict__ y,
                                                                                bool accumulate) {
  constexpr int kWarpRows = Format::kRows / kWarpsPerBlock > 0 ? Format::kRows / kWarpsPerBlock : 1;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t first_row = (int64_t(blockIdx.x) * kWarpsPerBlock + warp) * kWarpRows;
  if (first_row >= m.n_out) {  // no rows: only the wait (warp 0 of block 0 always has rows)
    wait_for_previous_kernel();
    return;
  }
  int64_t rows[kWarpRows];
#pragma unroll
  for (int r = 0; r < kWarpRows; ++r) rows[r] = min(first_row + r, m.n_out - 1);
  float acc[kWarpRows] = {};
  dot_rows<Format>(m, rows, lane, 32, x, acc, [] {});
#pragma unroll
  for (int r = 0; r < kWarpRows; ++r) {
    const float sum = warp_sum(acc[r]);
    const int64_t row = first_row + r;
    if (lane == 0 && row < m.n_out) y[row] = accumulate ? y[row] + sum : sum;
  }
}

// One warp per block of 32: scale max|x| / 127, values rounded to nearest, sums of each half.
__global__ void quantize_kernel(const float* x, int64_t n, int8_t* q, float* d, float* sums) {
  wait_for_previous_kernel();
  const int64_t block = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = int(threadIdx.x) & 31;
  if (block >= n / 32) return;
  const float v = x[block * 32 + lane];
  float amax = fabsf(v);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  const float scale = amax / 127.0f;
  const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
  q[block * 32 + lane] = int8_t(max(-127, min(127, __float2int_rn(v * inverse))));
  float sum = v;
#pragma unroll
  for (int offset = 8; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) d[block] = scale;
  if ((lane & 15) == 0) sums[block * 2 + (lane >> 4)] = sum;
}

// One block of 32 values per warp (lane = element): rounds v into q, d and sums as quantize_kernel.
__device__ __forceinline__ void quantize_block32(float v, int64_t block, int lane, int8_t* q, float* d, float* sums) {
  float amax = fabsf(v);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
  q[block * 32 + lane] = int8_t(max(-127, min(127, __float2int_rn(v * inverse))));
  float sum = v;
#pragma unroll
  for (int offset = 8; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) d[block] = amax / 127.0f;
  if ((lane & 15) == 0) sums[block * 2 + (lane >> 4)] = sum;
}

// quantize_kernel of silu(gate) * up, computed on the fly.
__global__ void quantize_silu_mul_kernel(const float* gate, const float* up, int64_t n, int8_t* q, float* d,
                                         float* sums) {
  wait_for_previous_kernel();
  const int64_t block = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = int(threadIdx.x) & 31;
  if (block >= n / 32) return;
  const float g = gate[block * 32 + lane];
  quantize_block32(g / (1.0f + expf(-g)) * up[block * 32 + lane], block, lane, q, d, sums);
}

// One block: y = x / sqrt(mean(x^2) + eps) * weight (when y is not null), rounded as quantize_kernel.
__global__ void __launch_bounds__(1024) rms_norm_quantize_kernel(const float* x, const float* weight, int64_t n,
                                                                 float eps, float* y, int8_t* q, float* d,
                                                                 float* sums) {
  wait_for_previous_kernel();
  __shared__ float partial[32];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss = fmaf(x[i], x[i], ss);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, offset);
  if (lane == 0) partial[warp] = ss;
  __syncthreads();
  ss = lane < n_warps ? partial[lane] : 0.0f;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, offset);
  const float inv = rsqrtf(ss / float(n) + eps);
  for (int64_t block = warp; block < n / 32; block += n_warps) {
    const int64_t i = block * 32 + lane;
    const float v = x[i] * inv * weight[i];
    if (y != nullptr) y[i] = v;
    quantize_block32(v, block, lane, q, d, sums);
  }
}

size_t quantized_bytes(int64_t n) { return size_t(n) + size_t(n / 32) * 4 + size_t(n / 16) * 4; }

}  // namespace

QuantizedVector::QuantizedVector(int64_t capacity) : buffer_(quantized_bytes(capacity)), capacity_(capacity) {
  if (capacity < 0 || capacity % 32 != 0) detail::fail_argument("QuantizedVector: expected a capacity multiple of 32");
}

void QuantizedVector::quantize(const float* x, int64_t n, Stream stream) {
  if (n <= 0 || n % 32 != 0) {
    detail::fail_argument("quantize: expected a length that is a positive multiple of 32, found " + std::to_string(n));
  }
  if (x == nullptr) detail::fail_argument("quantize: null pointer");
  if (n > capacity_) {
    buffer_ = DeviceBuffer(quantized_bytes(n));
    capacity_ = n;
  }
  n_ = n;
  auto* base = buffer_.as<uint8_t>();
  auto* d = reinterpret_cast<float*>(base + n);
  const int threads = 256;
  const auto blocks = unsigned((n / 32 * 32 + threads - 1) / threads);
  quantize_kernel<<<blocks, threads, 0, stream>>>(x, n, reinterpret_cast<int8_t*>(base), d, d + n / 32);
  detail::check_launch("quantize");
}

void QuantizedVector::reserve(int64_t n) {
  if (n <= 0 || n % 32 != 0) {
    detail::fail_argument("quantize: expected a length that is a positive multiple of 32, found " + std::to_string(n));
  }
  if (n > capacity_) {
    buffer_ = DeviceBuffer(quantized_bytes(n));
    capacity_ = n;
  }
  n_ = n;
}

void QuantizedVector::quantize_rms_norm(const float* x, const float* weight, int64_t n, float eps, float* y,
                                        Stream stream) {
  if (x == nullptr || weight == nullptr) detail::fail_argument("quantize_rms_norm: null pointer");
  reserve(n);
  auto* base = buffer_.as<uint8_t>();
  auto* d = reinterpret_cast<float*>(base + n);
  rms_norm_quantize_kernel<<<1, 1024, 0, stream>>>(x, weight, n, eps, y, reinterpret_cast<int8_t*>(base), d,
                                                   d + n / 32);
  detail::check_launch("quantize_rms_norm");
}

void QuantizedVector::quantize_silu_mul(const float* gate, const float* up, int64_t n, Stream stream) {
  if (gate == nullptr || up == nullptr) detail::fail_argument("quantize_silu_mul: null pointer");
  reserve(n);
  auto* base = buffer_.as<uint8_t>();
  auto* d = reinterpret_cast<float*>(base + n);
  const int threads = 256;
  const auto blocks = unsigned((n + threads - 1) / threads);
  quantize_silu_mul_kernel<<<blocks, threads, 0, stream>>>(gate, up, n, reinterpret_cast<int8_t*>(base), d,
                                                           d + n / 32);
  detail::check_launch("quantize_silu_mul");
}

bool matvec_quantized_supported(DType type) {
  return type == DType::Q8_0 || type == DType::Q4_0 || type == DType::Q4_K || type == DType::Q6_K ||
         type == DType::Q5_0 || type == DType::Q5_1 || type == DType::Q5_K || type == DType::IQ4_NL ||
         type == DType::IQ4_XS;
}

void matvec(const DeviceMatrix& w, const QuantizedVector& x, float* y, Stream stream, bool accumulate) {
  check_matrix(w);
  if (x.size() != w.n_in) {
    detail::fail_argument("matvec: expected " + std::to_string(w.n_in) + " quantized activations, found " +
                          std::to_string(x.size()));
  }
  if (y == nullptr) detail::fail_argument("matvec: null output");
  const auto* base = static_cast<const uint8_t*>(x.data());
  const auto* d = reinterpret_cast<const float*>(base + x.size());
  const XQ xq{reinterpret_cast<const int8_t*>(base), d, d + x.size() / 32};
  const Matrix m = view(w);
  const auto launch = [&](auto format) {
    using Format = decltype(format);
    const int64_t pieces_per_row = w.n_in / (w.type == DType::Q8_0 ? 16 : 32);
    if (pieces_per_row < kWarpsPerBlock * 32) {
      constexpr int64_t kWarpRows = Format::kRows / kWarpsPerBlock > 0 ? Format::kRows / kWarpsPerBlock : 1;
      const auto blocks = unsigned((w.n_out + kWarpRows * kWarpsPerBlock - 1) / (kWarpRows * kWarpsPerBlock));
      matvec_int8_short_kernel<Format><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(m, xq, y, accumulate);
    } else {
      const auto blocks = unsigned((w.n_out + Format::kRows - 1) / Format::kRows);
      matvec_int8_kernel<Format><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(m, xq, y, accumulate);
    }
  };
  switch (w.type) {
    case DType::Q8_0: launch(Q8{}); break;
    case DType::Q4_0: launch(Q4{}); break;
    case DType::Q4_K: launch(Q4K{}); break;
    case DType::Q6_K: launch(Q6K{}); break;
    case DType::Q5_0: launch(Q5{}); break;
    case DType::Q5_K: launch(Q5K{}); break;
    case DType::IQ4_XS: launch(Iq4Xs{}); break;
    case DType::Q5_1: launch(Q51{}); break;
    case DType::IQ4_NL: launch(Iq4Nl{}); break;
    default:
      detail::fail_unsupported("no 8-bit activation kernel for weights of type " + std::string(dtype_name(w.type)));
  }
  detail::check_launch("matvec (8-bit activations)");
}

}  // namespace slm::cuda
