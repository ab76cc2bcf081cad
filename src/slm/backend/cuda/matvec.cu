// Matrix-vector products of one token (decode) and dequantization of weight rows (embedding
// look-ups, f16 tiles for cuBLAS) for every DeviceMatrix type.
//
// Decode reads each weight byte once, so the kernels aim at the memory bandwidth: a block owns a few
// rows (more for the 4-bit formats), its warps split each row's aligned 16-byte pieces (consecutive
// lanes, consecutive pieces), every lane loads the piece of all the block's rows before using them, and
// the activations (a few KB, from L1) are loaded once per piece for all those rows: their lane-strided
// loads, not the weights, are what L1 spends most of its cycles on. Quantized values become floats through the 2^23 trick (a byte placed in the mantissa of
// 2^23, minus 2^23 and the format's offset: exact, and cheaper than integer-to-float conversion).
#include <cuda_bf16.h>
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

// Byte k of w as 2^23 + byte (a float), minus `bias`: byte - (bias - 2^23) exactly.
template <int k>
__device__ __forceinline__ float byte_value(uint32_t w, float bias) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540u | k)) - bias;
}

// sum over the 4 bytes b_k of w of (b_k - offset) * x_k, with bias = 2^23 + offset. Two short chains:
// long chains of dependent multiply-adds, not memory, would bound the kernels.
__device__ __forceinline__ float dot4(uint32_t w, float4 x, float bias) {
  const float a = fmaf(byte_value<1>(w, bias), x.y, byte_value<0>(w, bias) * x.x);
  const float b = fmaf(byte_value<3>(w, bias), x.w, byte_value<2>(w, bias) * x.z);
  return a + b;
}

__device__ __forceinline__ float sum4(float4 x) { return (x.x + x.y) + (x.z + x.w); }

__device__ __forceinline__ float4 load_x(const float* x, int64_t index4) {
  return __ldg(reinterpret_cast<const float4*>(x) + index4);
}

// Activation loaders: float4 number i of the vector the product reads; prepare() runs once per block
// before the first load (all threads); every row's sum is multiplied by factor() (all threads, after
// the last load).
struct PlainX {
  const float* x;
  __device__ void prepare(int64_t) {}
  __device__ float4 operator()(int64_t i) const { return load_x(x, i); }
  __device__ float factor(int64_t) const { return 1.0f; }
};
// rms_norm(x) * weight, the norm applied last: rows . (x * weight) scaled by 1 / rms(x). The block's
// loads cover x exactly once, so the sum of squares is gathered along the way (no pass over x before
// the first multiply, no separate launch writing the normalized vector).
struct NormX {
  const float* x;
  const float* weight;
  float eps;
  mutable float ss = 0.0f;  // this thread's share of sum(x^2)
  __device__ void prepare(int64_t) {}
  __device__ float4 operator()(int64_t i) const {
    const float4 v = load_x(x, i), w = load_x(weight, i);
    ss = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, ss))));
    return make_float4(v.x * w.x, v.y * w.y, v.z * w.z, v.w * w.w);
  }
  __device__ float factor(int64_t n) const {
    __shared__ float partial[kWarpsPerBlock];
    const float sum = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = sum;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarpsPerBlock; ++w) total += partial[w];
    return rsqrtf(total / float(n) + eps);
  }
};
// silu(gate) * up, computed as the product reads it (the MLP's down projection).
struct SiluMulX {
  const float* gate;
  const float* up;
  __device__ void prepare(int64_t) {}
  __device__ float4 operator()(int64_t i) const {
    const float4 g = load_x(gate, i), u = load_x(up, i);
    return make_float4(g.x / (1.0f + expf(-g.x)) * u.x, g.y / (1.0f + expf(-g.y)) * u.y,
                       g.z / (1.0f + expf(-g.z)) * u.z, g.w / (1.0f + expf(-g.w)) * u.w);
  }
  __device__ float factor(int64_t) const { return 1.0f; }
};

constexpr float kTwo23 = 8388608.0f;

// Each format: Piece (what one lane loads for one 16-byte piece), pieces(m) per row, load(),
// dot() (the piece's contribution to its row's product), and value() for dequantization.

struct F32Format {
  struct Piece {
    uint4 w;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 4; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    return {load16(m.data + (row * m.n_in + 4 * c) * 4)};
  }
  static constexpr int kRows = 4;  // rows per block
  using X = float4;
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) { return x(c); }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    acc = fmaf(__uint_as_float(p.w.x), xv.x, acc);
    acc = fmaf(__uint_as_float(p.w.y), xv.y, acc);
    acc = fmaf(__uint_as_float(p.w.z), xv.z, acc);
    acc = fmaf(__uint_as_float(p.w.w), xv.w, acc);
    return acc;
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    return reinterpret_cast<const float*>(m.data)[row * m.n_in + i];
  }
};

template <bool kBf16>
struct HalfFormat {
  struct Piece {
    uint4 w;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 8; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    return {load16(m.data + (row * m.n_in + 8 * c) * 2)};
  }
  static __device__ float2 pair(uint32_t w) {
    if constexpr (kBf16) {
      return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
    } else {
      return __half22float2(*reinterpret_cast<const __half2*>(&w));
    }
  }
  static constexpr int kRows = 4;
  struct X {
    float4 a, b;
  };
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) { return {x(2 * c), x(2 * c + 1)}; }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    const float4& x0 = xv.a;
    const float4& x1 = xv.b;
    float2 w = pair(p.w.x);
    acc = fmaf(w.x, x0.x, acc);
    acc = fmaf(w.y, x0.y, acc);
    w = pair(p.w.y);
    acc = fmaf(w.x, x0.z, acc);
    acc = fmaf(w.y, x0.w, acc);
    w = pair(p.w.z);
    acc = fmaf(w.x, x1.x, acc);
    acc = fmaf(w.y, x1.y, acc);
    w = pair(p.w.w);
    acc = fmaf(w.x, x1.z, acc);
    acc = fmaf(w.y, x1.w, acc);
    return acc;
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const uint16_t bits = reinterpret_cast<const uint16_t*>(m.data)[row * m.n_in + i];
    if constexpr (kBf16) {
      return __uint_as_float(uint32_t(bits) << 16);
    } else {
      return half_bits(bits);
    }
  }
};

// Q8_0: piece c = 16 int8 values (elements 16c..16c+15) of block c / 2.
struct Q8Format {
  struct Piece {
    uint4 q;
    float d;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 16; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t piece = row * (m.n_in / 16) + c;
    const uint16_t d = __ldg(reinterpret_cast<const unsigned short*>(m.plane1) + piece / 2);
    return {load16(m.data + 16 * piece), half_bits(d)};
  }
  static constexpr int kRows = 4;
  struct X {
    float4 v[4];
  };
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) {
    X xv;
#pragma unroll
    for (int i = 0; i < 4; ++i) xv.v[i] = x(4 * c + i);
    return xv;
  }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    constexpr float bias = kTwo23 + 128.0f;  // bytes hold q + 128 after the sign flip
    float t[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) t[i] = dot4(word(p.q, i) ^ 0x80808080u, xv.v[i], bias);
    return fmaf(p.d, (t[0] + t[1]) + (t[2] + t[3]), acc);
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t e = row * m.n_in + i;
    const float d = half_bits(reinterpret_cast<const uint16_t*>(m.plane1)[e / 32]);
    return d * float(reinterpret_cast<const int8_t*>(m.data)[e]);
  }
};

// Q4_0: piece c = block c (16 bytes: element j in the low nibble of byte j, element j + 16 in the high one).
struct Q4Format {
  struct Piece {
    uint4 q;
    float d;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 32) + c;
    const uint16_t d = __ldg(reinterpret_cast<const unsigned short*>(m.plane1) + block);
    return {load16(m.data + 16 * block), half_bits(d)};
  }
  static constexpr int kRows = 8;
  struct X {
    float4 v[8];
  };
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) {
    X xv;
#pragma unroll
    for (int i = 0; i < 8; ++i) xv.v[i] = x(8 * c + i);
    return xv;
  }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    constexpr float bias = kTwo23 + 8.0f;
    float t[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = word(p.q, i);
      t[i] = dot4(w & 0x0f0f0f0fu, xv.v[i], bias) + dot4((w >> 4) & 0x0f0f0f0fu, xv.v[4 + i], bias);
    }
    return fmaf(p.d, (t[0] + t[1]) + (t[2] + t[3]), acc);
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 32) + i / 32;
    const int j = int(i % 32);
    const uint8_t byte = m.data[16 * block + (j & 15)];
    const int q = j < 16 ? (byte & 15) : (byte >> 4);
    return half_bits(reinterpret_cast<const uint16_t*>(m.plane1)[block]) * float(q - 8);
  }
};

// Q4_K (planes): piece c = 16 of the 128 quant bytes of super-block c / 8. Piece j = c % 8 holds
// bytes 16j..16j+15: low nibbles are elements 64(j/2) + 16(j%2) + i (sub-block 2(j/2)), high nibbles
// 32 further (sub-block 2(j/2) + 1); their scales, minimums and (d, dmin) come from the other planes.
struct Q4KFormat {
  struct Piece {
    uint4 q;
    Q4KMeta meta;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    return {load16(m.data + block * 128 + 16 * (c % 8)), q4k_meta(m, block, int(c % 8) >> 1)};
  }
  static constexpr int kRows = 8;
  struct X {
    float4 a[4], b[4];  // the low- and high-nibble elements
    float sum_a, sum_b;
  };
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) {
    const int j = int(c % 8);
    const int64_t x4 = (c / 8) * 64 + (j >> 1) * 16 + (j & 1) * 4;  // float4 index of the low-nibble elements
    X xv;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      xv.a[i] = x(x4 + i);
      xv.b[i] = x(x4 + 8 + i);
    }
    xv.sum_a = (sum4(xv.a[0]) + sum4(xv.a[1])) + (sum4(xv.a[2]) + sum4(xv.a[3]));
    xv.sum_b = (sum4(xv.b[0]) + sum4(xv.b[1])) + (sum4(xv.b[2]) + sum4(xv.b[3]));
    return xv;
  }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    const int scale1 = p.meta.scales & 0xff, scale2 = p.meta.scales >> 8;
    const int min1 = p.meta.mins & 0xff, min2 = p.meta.mins >> 8;
    float t1[4], t2[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = word(p.q, i);
      t1[i] = dot4(w & 0x0f0f0f0fu, xv.a[i], kTwo23);
      t2[i] = dot4((w >> 4) & 0x0f0f0f0fu, xv.b[i], kTwo23);
    }
    const float s1 = (t1[0] + t1[1]) + (t1[2] + t1[3]), s2 = (t2[0] + t2[1]) + (t2[2] + t2[3]);
    const float sum1 = xv.sum_a, sum2 = xv.sum_b;
    const float2 dm = q4k_dm(p.meta.dm);  // (d, dmin)
    acc = fmaf(dm.x * float(scale1), s1, acc);
    acc = fmaf(dm.x * float(scale2), s2, acc);
    acc = fmaf(-dm.y * float(min1), sum1, acc);
    acc = fmaf(-dm.y * float(min2), sum2, acc);
    return acc;
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 256) + i / 256;
    const int e = int(i % 256);
    const int pair = e / 64, within = e % 64;
    const int sub = 2 * pair + (within >= 32 ? 1 : 0);
    const int scale = m.plane1[block * 16 + sub], min = m.plane1[block * 16 + 8 + sub];
    const uint8_t byte = m.data[block * 128 + 32 * pair + within % 32];
    const int q = within < 32 ? (byte & 15) : (byte >> 4);
    const float2 dm = q4k_dm(reinterpret_cast<const uint32_t*>(m.plane2)[block]);
    return dm.x * float(scale) * float(q) - dm.y * float(min);
  }
};

// Q6_K (planes: 192 bytes ql|qh, 16 scales, d per super-block): piece c = 16 bytes of ql of super-block
// c / 8: j = c % 8 = 4h + 2m + n covers ql bytes 64h + 32m + 16n + i (i < 16), whose low nibbles are
// elements 128h + 32m + 16n + i and high nibbles the elements 64 further; their top two bits come from
// qh byte 32h + 16n + i (bits 2m and 2m + 4).
struct Q6KFormat {
  struct Piece {
    uint4 ql;
    uint4 qh;
    uint4 scales;
    float d;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    const int j = int(c % 8);
    const int h = j >> 2, mm = (j >> 1) & 1, n = j & 1;
    const uint8_t* bits = m.data + block * 192;
    const uint16_t d = __ldg(reinterpret_cast<const unsigned short*>(m.plane2) + block);
    return {load16(bits + 64 * h + 32 * mm + 16 * n), load16(bits + 128 + 32 * h + 16 * n),
            load16(m.plane1 + block * 16), half_bits(d)};
  }
  static constexpr int kRows = 8;
  struct X {
    float4 a[4], b[4];  // the low- and high-nibble elements
  };
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) {
    const int j = int(c % 8);
    const int64_t x4 = (c / 8) * 64 + (128 * (j >> 2) + 32 * ((j >> 1) & 1) + 16 * (j & 1)) / 4;
    X xv;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      xv.a[i] = x(x4 + i);
      xv.b[i] = x(x4 + 16 + i);
    }
    return xv;
  }
  static __device__ float dot(const Piece& p, int64_t c, const X& xv, float acc) {
    const int j = int(c % 8);
    const int h = j >> 2, mm = (j >> 1) & 1, n = j & 1;
    const int sub = 8 * h + 2 * mm + n;  // sub-block of 16 of the low-nibble elements; +4 for the high ones
    const float scale1 = float(int8_t(byte_at(p.scales, sub)));
    const float scale2 = float(int8_t(byte_at(p.scales, sub + 4)));
    const int shift = 2 * mm;
    constexpr float bias = kTwo23 + 32.0f;
    float t1[4], t2[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t low = word(p.ql, i), high = word(p.qh, i);
      const uint32_t q1 = (low & 0x0f0f0f0fu) | (((high >> shift) & 0x03030303u) << 4);
      const uint32_t q2 = ((low >> 4) & 0x0f0f0f0fu) | (((high >> (shift + 4)) & 0x03030303u) << 4);
      t1[i] = dot4(q1, xv.a[i], bias);
      t2[i] = dot4(q2, xv.b[i], bias);
    }
    const float s1 = (t1[0] + t1[1]) + (t1[2] + t1[3]), s2 = (t2[0] + t2[1]) + (t2[2] + t2[3]);
    return fmaf(p.d, fmaf(scale1, s1, scale2 * s2), acc);
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 256) + i / 256;
    const int e = int(i % 256);
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t* bits = m.data + block * 192;
    const uint8_t low_byte = bits[64 * h + l + 32 * (k & 1)];
    const int low = k < 2 ? (low_byte & 15) : (low_byte >> 4);
    const int high = (bits[128 + 32 * h + l] >> (2 * k)) & 3;
    const float d = half_bits(reinterpret_cast<const uint16_t*>(m.plane2)[block]);
    const float scale = float(reinterpret_cast<const int8_t*>(m.plane1)[block * 16 + e / 16]);
    return d * scale * float((low | (high << 4)) - 32);
  }
};

// Q5_0 (planes: qs [blocks][16] | qh u32 [blocks] | d f16 [blocks]): piece c = block c, as Q4_0 with
// bit 4 of element j from bit j of qh, values q - 16.
struct Q5Format {
  struct Piece {
    uint4 q;
    uint32_t qh;
    float d;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 32) + c;
    const uint32_t qh = __ldg(reinterpret_cast<const unsigned int*>(m.plane1) + block);
    const uint16_t d = __ldg(reinterpret_cast<const unsigned short*>(m.plane2) + block);
    return {load16(m.data + 16 * block), qh, half_bits(d)};
  }
  static constexpr int kRows = 8;
  using X = Q4Format::X;
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) { return Q4Format::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    constexpr float bias = kTwo23 + 16.0f;
    float t[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = word(p.q, i);
      const uint32_t low = (w & 0x0f0f0f0fu) | spread_bit4((p.qh >> (4 * i)) & 15u);
      const uint32_t high = ((w >> 4) & 0x0f0f0f0fu) | spread_bit4((p.qh >> (16 + 4 * i)) & 15u);
      t[i] = dot4(low, xv.v[i], bias) + dot4(high, xv.v[4 + i], bias);
    }
    return fmaf(p.d, (t[0] + t[1]) + (t[2] + t[3]), acc);
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 32) + i / 32;
    const int j = int(i % 32);
    const uint8_t byte = m.data[16 * block + (j & 15)];
    const uint32_t qh = reinterpret_cast<const uint32_t*>(m.plane1)[block];
    const int q = (j < 16 ? (byte & 15) : (byte >> 4)) | int(((qh >> j) & 1u) << 4);
    return half_bits(reinterpret_cast<const uint16_t*>(m.plane2)[block]) * float(q - 16);
  }
};

// Q5_K (planes: [nb][160] = qs[128] | qh[32], unpacked scales and minimums [nb][16], (d, dmin) [nb]):
// piece c as Q4_K, the fifth bits from qh byte 16(j%2) + i: bit 2(j/2) for the low nibbles, the next
// bit for the high ones.
struct Q5KFormat {
  struct Piece {
    uint4 q;
    uint4 qh;
    Q4KMeta meta;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    const int j = int(c % 8);
    const uint8_t* bits = m.data + block * 160;
    return {load16(bits + 16 * j), load16(bits + 128 + 16 * (j & 1)), q4k_meta(m, block, j >> 1)};
  }
  static constexpr int kRows = 8;
  using X = Q4KFormat::X;
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) { return Q4KFormat::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t c, const X& xv, float acc) {
    const int shift = 2 * (int(c % 8) >> 1);
    const int scale1 = p.meta.scales & 0xff, scale2 = p.meta.scales >> 8;
    const int min1 = p.meta.mins & 0xff, min2 = p.meta.mins >> 8;
    float t1[4], t2[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = word(p.q, i), h = word(p.qh, i);
      t1[i] = dot4((w & 0x0f0f0f0fu) | (((h >> shift) & 0x01010101u) << 4), xv.a[i], kTwo23);
      t2[i] = dot4(((w >> 4) & 0x0f0f0f0fu) | (((h >> (shift + 1)) & 0x01010101u) << 4), xv.b[i], kTwo23);
    }
    const float s1 = (t1[0] + t1[1]) + (t1[2] + t1[3]), s2 = (t2[0] + t2[1]) + (t2[2] + t2[3]);
    const float2 dm = q4k_dm(p.meta.dm);
    acc = fmaf(dm.x * float(scale1), s1, acc);
    acc = fmaf(dm.x * float(scale2), s2, acc);
    acc = fmaf(-dm.y * float(min1), xv.sum_a, acc);
    acc = fmaf(-dm.y * float(min2), xv.sum_b, acc);
    return acc;
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 256) + i / 256;
    const int e = int(i % 256);
    const int pair = e / 64, within = e % 64;
    const int sub = 2 * pair + (within >= 32 ? 1 : 0);
    const int scale = m.plane1[block * 16 + sub], min = m.plane1[block * 16 + 8 + sub];
    const uint8_t* bits = m.data + block * 160;
    const uint8_t byte = bits[32 * pair + within % 32];
    const int high = (bits[128 + within % 32] >> sub) & 1;
    const int q = (within < 32 ? (byte & 15) : (byte >> 4)) | (high << 4);
    const float2 dm = q4k_dm(reinterpret_cast<const uint32_t*>(m.plane2)[block]);
    // The reference's rounding: (d * scale) * q - dmin * min.
    return (dm.x * float(scale)) * float(q) - dm.y * float(min);
  }
};

// IQ4_XS (planes: qs [nb][128] | sub-block scales int8 [nb][8] (ls - 32) | d f16 [nb]): piece c = the
// 16 code bytes of sub-block c % 8 (element j in the low nibble of byte j, j + 16 in the high one).
struct Iq4XsFormat {
  struct Piece {
    uint4 q;
    float d;  // d * (ls - 32)
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 256) + c / 8;
    const float d = half_bits(__ldg(reinterpret_cast<const unsigned short*>(m.plane2) + block));
    const int8_t ls = int8_t(__ldg(m.plane1 + block * 8 + c % 8));
    return {load16(m.data + block * 128 + 16 * (c % 8)), d * float(ls)};
  }
  static constexpr int kRows = 8;
  using X = Q4Format::X;
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) { return Q4Format::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    constexpr float bias = kTwo23 + 128.0f;  // signed table bytes plus 128 after the sign flip
    const Iq4Table table = iq4_table();
    float t[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = word(p.q, i);
      const uint32_t low = iq4_lookup(table, w & 0x0f0f0f0fu) ^ 0x80808080u;
      const uint32_t high = iq4_lookup(table, (w >> 4) & 0x0f0f0f0fu) ^ 0x80808080u;
      t[i] = dot4(low, xv.v[i], bias) + dot4(high, xv.v[4 + i], bias);
    }
    return fmaf(p.d, (t[0] + t[1]) + (t[2] + t[3]), acc);
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 256) + i / 256;
    const int e = int(i % 256), s = e / 32, j = e % 32;
    const uint8_t byte = m.data[block * 128 + 16 * s + (j & 15)];
    const int code = j < 16 ? (byte & 15) : (byte >> 4);
    const float d = half_bits(reinterpret_cast<const uint16_t*>(m.plane2)[block]);
    const float dl = d * float(reinterpret_cast<const int8_t*>(m.plane1)[block * 8 + s]);
    const int value = int8_t(iq4_lookup(iq4_table(), uint32_t(code)) & 0xffu);
    return dl * float(value);
  }
};

// Q5_1 (planes: qs [blocks][16] | qh u32 [blocks] | (d, m) f16 [blocks][2]): Q5_0's levels q (0..31),
// value q * d + m.
struct Q51Format {
  struct Piece {
    uint4 q;
    uint32_t qh;
    uint32_t dm;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const int64_t block = row * (m.n_in / 32) + c;
    return {load16(m.data + 16 * block), __ldg(reinterpret_cast<const unsigned int*>(m.plane1) + block),
            __ldg(reinterpret_cast<const unsigned int*>(m.plane2) + block)};
  }
  static constexpr int kRows = 8;
  using X = Q4Format::X;
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) { return Q4Format::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t, const X& xv, float acc) {
    float t[4], sums[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = word(p.q, i);
      const uint32_t low = (w & 0x0f0f0f0fu) | spread_bit4((p.qh >> (4 * i)) & 15u);
      const uint32_t high = ((w >> 4) & 0x0f0f0f0fu) | spread_bit4((p.qh >> (16 + 4 * i)) & 15u);
      t[i] = dot4(low, xv.v[i], kTwo23) + dot4(high, xv.v[4 + i], kTwo23);
      sums[i] = sum4(xv.v[i]) + sum4(xv.v[4 + i]);
    }
    const float2 dm = q4k_dm(p.dm);  // (d, m)
    acc = fmaf(dm.x, (t[0] + t[1]) + (t[2] + t[3]), acc);
    return fmaf(dm.y, (sums[0] + sums[1]) + (sums[2] + sums[3]), acc);
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 32) + i / 32;
    const int j = int(i % 32);
    const uint8_t byte = m.data[16 * block + (j & 15)];
    const uint32_t qh = reinterpret_cast<const uint32_t*>(m.plane1)[block];
    const int q = (j < 16 ? (byte & 15) : (byte >> 4)) | int(((qh >> j) & 1u) << 4);
    const float2 dm = q4k_dm(reinterpret_cast<const uint32_t*>(m.plane2)[block]);
    return float(q) * dm.x + dm.y;
  }
};

// IQ4_NL (planes as Q4_0: qs [blocks][16] | d f16 [blocks]): piece c = block c, codes into the table.
struct Iq4NlFormat {
  struct Piece {
    uint4 q;
    float d;
  };
  static __device__ int64_t pieces(const Matrix& m) { return m.n_in / 32; }
  static __device__ Piece load(const Matrix& m, int64_t row, int64_t c) {
    const auto p = Q4Format::load(m, row, c);
    return {p.q, p.d};
  }
  static constexpr int kRows = 8;
  using X = Q4Format::X;
  template <typename L>
  static __device__ X load_x(const L& x, int64_t c) { return Q4Format::load_x(x, c); }
  static __device__ float dot(const Piece& p, int64_t c, const X& xv, float acc) {
    return Iq4XsFormat::dot({p.q, p.d}, c, xv, acc);
  }
  static __device__ float value(const Matrix& m, int64_t row, int64_t i) {
    const int64_t block = row * (m.n_in / 32) + i / 32;
    const int j = int(i % 32);
    const uint8_t byte = m.data[16 * block + (j & 15)];
    const int code = j < 16 ? (byte & 15) : (byte >> 4);
    const int value = int8_t(iq4_lookup(iq4_table(), uint32_t(code)) & 0xffu);
    return half_bits(reinterpret_cast<const uint16_t*>(m.plane1)[block]) * float(value);
  }
};

// Block b: rows [b * kRows, ...); warp w takes the pieces w * 32 + lane, + 128, ... of every row.
template <typename Format, typename Loader>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) matvec_kernel(Matrix m, Loader x, float* __restrict__ y,
                                                                     bool accumulate) {
  constexpr int kRows = Format::kRows;
  __shared__ float partial[kWarpsPerBlock][kRows];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t first_row = int64_t(blockIdx.x) * kRows;
  int64_t rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = min(first_row + r, m.n_out - 1);  // duplicates are not written
  float acc[kRows] = {};
  dot_rows<Format>(m, rows, int64_t(warp) * 32 + lane, kWarpsPerBlock * 32, x, acc, [&] { x.prepare(m.n_in); });
  const float factor = x.factor(m.n_in);
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] *= factor;
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

// out[t][i] = value of row ids[t] (or row row0 + t when ids is null), element i, as OutT.
template <typename Format, typename OutT>
__global__ void dequantize_kernel(Matrix m, const int32_t* ids, int64_t row0, int64_t n_rows, OutT* out) {
  wait_for_previous_kernel();
  const int64_t total = n_rows * m.n_in;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = k / m.n_in, i = k % m.n_in;
    const int64_t row = ids != nullptr ? int64_t(ids[t]) : row0 + t;
    float v = 0.0f;
    if (row >= 0 && row < m.n_out) v = Format::value(m, row, i);
    if constexpr (sizeof(OutT) == 2) {
      out[k] = __float2half_rn(v);
    } else {
      out[k] = v;
    }
  }
}

// Calls f(Format{}) for the matrix's type.
template <typename F>
void dispatch(DType type, F&& f) {
  switch (type) {
    case DType::F32: return f(F32Format{});
    case DType::F16: return f(HalfFormat<false>{});
    case DType::BF16: return f(HalfFormat<true>{});
    case DType::Q8_0: return f(Q8Format{});
    case DType::Q4_0: return f(Q4Format{});
    case DType::Q4_K: return f(Q4KFormat{});
    case DType::Q6_K: return f(Q6KFormat{});
    case DType::Q5_0: return f(Q5Format{});
    case DType::Q5_K: return f(Q5KFormat{});
    case DType::IQ4_XS: return f(Iq4XsFormat{});
    case DType::Q5_1: return f(Q51Format{});
    case DType::IQ4_NL: return f(Iq4NlFormat{});
    default: detail::fail_unsupported("no kernel for weights of type " + std::string(dtype_name(type)));
  }
}

int grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return int(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

void matvec(const DeviceMatrix& w, const float* x, float* y, Stream stream, bool accumulate) {
  check_matrix(w);
  if (x == nullptr || y == nullptr) detail::fail_argument("matvec: expected device vectors, found a null pointer");
  const Matrix m = view(w);
  dispatch(w.type, [&](auto format) {
    using Format = decltype(format);
    const auto blocks = unsigned((w.n_out + Format::kRows - 1) / Format::kRows);
    matvec_kernel<Format><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(m, PlainX{x}, y, accumulate);
  });
  detail::check_launch("matvec");
}

void matvec_rms_norm(const DeviceMatrix& w, const float* x, const float* weight, float eps, float* y, Stream stream,
                     bool accumulate) {
  check_matrix(w);
  if (x == nullptr || weight == nullptr || y == nullptr) {
    detail::fail_argument("matvec_rms_norm: expected device vectors, found a null pointer");
  }
  if (w.type != DType::F32 && w.type != DType::F16 && w.type != DType::BF16) {
    detail::fail_unsupported("matvec_rms_norm: expected F32, F16 or BF16 weights, found " +
                             std::string(dtype_name(w.type)));
  }
  const Matrix m = view(w);
  dispatch(w.type, [&](auto format) {
    using Format = decltype(format);
    const auto blocks = unsigned((w.n_out + Format::kRows - 1) / Format::kRows);
    matvec_kernel<Format><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(m, NormX{x, weight, eps}, y, accumulate);
  });
  detail::check_launch("matvec_rms_norm");
}

void matvec_silu_mul(const DeviceMatrix& w, const float* gate, const float* up, float* y, Stream stream,
                     bool accumulate) {
  check_matrix(w);
  if (gate == nullptr || up == nullptr || y == nullptr) {
    detail::fail_argument("matvec_silu_mul: expected device vectors, found a null pointer");
  }
  const Matrix m = view(w);
  dispatch(w.type, [&](auto format) {
    using Format = decltype(format);
    const auto blocks = unsigned((w.n_out + Format::kRows - 1) / Format::kRows);
    matvec_kernel<Format><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(m, SiluMulX{gate, up}, y, accumulate);
  });
  detail::check_launch("matvec_silu_mul");
}

void embedding(const DeviceMatrix& table, const int32_t* ids, int64_t n_ids, float* out, Stream stream) {
  check_matrix(table);
  if (n_ids <= 0) return;
  if (ids == nullptr || out == nullptr) detail::fail_argument("embedding: expected device arrays, found a null pointer");
  const Matrix m = view(table);
  dispatch(table.type, [&](auto format) {
    dequantize_kernel<decltype(format), float><<<grid_for(n_ids * table.n_in, 256), 256, 0, stream>>>(m, ids, 0, n_ids, out);
  });
  detail::check_launch("embedding");
}

namespace detail {

void dequantize_rows_f16(const DeviceMatrix& w, int64_t row0, int64_t rows, void* dst, Stream stream) {
  check_matrix(w);
  if (row0 < 0 || rows < 0 || row0 + rows > w.n_out) fail_argument("dequantize_rows_f16: rows outside the matrix");
  if (rows == 0) return;
  const Matrix m = view(w);
  auto* out = static_cast<__half*>(dst);
  dispatch(w.type, [&](auto format) {
    dequantize_kernel<decltype(format), __half>
        <<<grid_for(rows * w.n_in, 256), 256, 0, stream>>>(m, nullptr, row0, rows, out);
  });
  check_launch("dequantize_rows_f16");
}

}  // namespace detail

}  // namespace slm::cuda
