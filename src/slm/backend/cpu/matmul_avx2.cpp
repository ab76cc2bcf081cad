// The AVX2 path (with FMA and F16C), for CPUs without AVX-512. This file is compiled for those
// extensions and its functions are called only after the run-time check in matmul.cpp. It uses no
// inline code shared with other files (only intrinsics and functions of its own, internal linkage).
//
// The same two kernels as the AVX-512 path, sized for 16 ymm registers: dot products of weight rows
// with up to 8 tokens for generation, and a blocked matrix product with a 6 x 16 register tile for
// prompts. Accumulation is f32 throughout.

// GCC 12 warns about the deliberately undefined vectors inside some intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <cstddef>
#include <cstdint>

#include "slm/backend/cpu/matmul_kernels.hpp"

namespace slm::cpu::kernels {
namespace {

constexpr int kMr = 6;             // tokens per register tile
constexpr int kNr = 16;            // outputs per register tile (two ymm)
constexpr int64_t kKc = 128;       // inputs per packed block (at most)
constexpr int64_t kNc = 128;       // outputs per packed weight block (a multiple of kNr)
constexpr int64_t kGemmMinTokens = 8;  // fewer tokens go to the dot-product kernel, all in one pass
constexpr int64_t kParallelMinWork = 1 << 16;  // multiply-adds below which one thread does it all

int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

void thread_range(int64_t count, int64_t unit, int thread, int threads, int64_t* begin, int64_t* end) {
  const int64_t units = ceil_div(count, unit);
  *begin = min64(count, units * thread / threads * unit);
  *end = min64(count, units * (thread + 1) / threads * unit);
}

// ---------------------------------------------------------------------------------------------
// Weight loads as f32.

template <WeightType T>
constexpr int64_t kElementBytes = T == WeightType::f32 ? 4 : 2;

// 8 weights starting at element k of `row`.
template <WeightType T>
__m256 load8(const uint8_t* row, int64_t k) {
  if constexpr (T == WeightType::f32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + k));
    if constexpr (T == WeightType::f16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// The first `count` (< 8) weights from element k, zero in the other lanes; reads only those.
template <WeightType T>
__m256 load8_partial(const uint8_t* row, int64_t k, int64_t count) {
  alignas(32) uint8_t buffer[32] = {};
  __builtin_memcpy(buffer, row + k * kElementBytes<T>, size_t(count * kElementBytes<T>));
  return load8<T>(buffer, 0);
}

__m256 load8_partial_f32(const float* p, int64_t count) {
  return load8_partial<WeightType::f32>(reinterpret_cast<const uint8_t*>(p), 0, count);
}

// ---------------------------------------------------------------------------------------------
// Dot-product kernel (few tokens).

float sum8(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// y[t * y_stride] = dot(row, x[t]) for t < NT tokens (n_in floats apart).
template <WeightType T, int NT>
void dot_row(const uint8_t* row, const float* x, int64_t n_in, float* y, int64_t y_stride) {
  constexpr int U = NT <= 2 ? 2 : 1;
  __m256 acc[NT][U];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();

  int64_t k = 0;
  for (; k + 8 * U <= n_in; k += 8 * U) {
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) {
      const __m256 wv = load8<T>(row, k + 8 * u);
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) acc[t][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * n_in + k + 8 * u), acc[t][u]);
    }
  }
  for (; k < n_in; k += 8) {
    const int64_t count = min64(8, n_in - k);
    const __m256 wv = count == 8 ? load8<T>(row, k) : load8_partial<T>(row, k, count);
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const float* xt = x + t * n_in + k;
      acc[t][0] = _mm256_fmadd_ps(wv, count == 8 ? _mm256_loadu_ps(xt) : load8_partial_f32(xt, count), acc[t][0]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) {
#pragma GCC unroll 16
    for (int u = 1; u < U; ++u) acc[t][0] = _mm256_add_ps(acc[t][0], acc[t][u]);
    y[t * y_stride] = sum8(acc[t][0]);
  }
}

using DotRow = void (*)(const uint8_t*, const float*, int64_t, float*, int64_t);

static_assert(kGemmMinTokens == 8, "one dot-product kernel for each token count below kGemmMinTokens");
template <WeightType T>
constexpr DotRow kDotRow[kGemmMinTokens] = {nullptr,       dot_row<T, 1>, dot_row<T, 2>, dot_row<T, 3>,
                                            dot_row<T, 4>, dot_row<T, 5>, dot_row<T, 6>, dot_row<T, 7>};

// One row at a time, front to back (weights stream in memory order), all tokens in one pass.
template <WeightType T>
void dot_product_matmul(const MatmulTask& task) {
  const size_t row_bytes = size_t(task.n_in) * kElementBytes<T>;
  const auto* w = static_cast<const uint8_t*>(task.w);
  const int64_t n_in = task.n_in, n_out = task.n_out, n_tokens = task.n_tokens;
  const bool parallel = n_out * n_in * n_tokens >= kParallelMinWork;
#pragma omp parallel num_threads(task.n_threads) if (parallel)
  {
    int64_t begin = 0, end = 0;
    thread_range(n_out, 16, omp_get_thread_num(), omp_get_num_threads(), &begin, &end);
    const DotRow kernel = kDotRow<T>[n_tokens];
    for (int64_t o = begin; o < end; ++o) {
      kernel(w + size_t(o) * row_bytes, task.x, n_in, task.y + o, n_out);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Blocked matrix product (many tokens).

// Transposes the 8 x 8 matrix held in r[0..7] (row i in r[i]) in place.
[[gnu::always_inline]] inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  // u0, 128-bit half L: rows 0-3 of column 4L; u1: column 4L+1; ...; u4..u7: rows 4-7.
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44);
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44);
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44);
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44);
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Packs tokens [t0, t0 + n_rows) (n_rows <= kMr) of x into dst[k * kMr + i] for all k < n_in.
void pack_x_tile(const float* x, int64_t n_in, int64_t t0, int64_t n_rows, float* dst) {
  for (int64_t i = 0; i < kMr; ++i) {
    if (i < n_rows) {
      const float* row = x + (t0 + i) * n_in;
      for (int64_t k = 0; k < n_in; ++k) dst[k * kMr + i] = row[k];
    } else {
      for (int64_t k = 0; k < n_in; ++k) dst[k * kMr + i] = 0.0f;
    }
  }
}

// Packs weight rows [o0, o0 + n_rows) (n_rows <= kNc), inputs [k0, k0 + kc), as f32 panels of kNr
// outputs: panel p at dst + p * kc * kNr holds element (k, c) at k * kNr + c. Rows past n_rows are zero.
template <WeightType T>
void pack_w_block(const uint8_t* w, size_t row_bytes, int64_t o0, int64_t n_rows, int64_t k0, int64_t kc, float* dst) {
  const int64_t n_panels = ceil_div(n_rows, kNr);
  for (int64_t p = 0; p < n_panels; ++p) {
    for (int half = 0; half < kNr / 8; ++half) {
      const int64_t first = p * kNr + half * 8;
      const int64_t valid = max64(0, min64(8, n_rows - first));
      float* d = dst + p * kc * kNr + half * 8;
      if (valid == 0) {
        for (int64_t k = 0; k < kc; ++k) _mm256_store_ps(d + k * kNr, _mm256_setzero_ps());
        continue;
      }
      const uint8_t* rows = w + size_t(o0 + first) * row_bytes;
      for (int64_t k = 0; k < kc; k += 8) {
        const int64_t len = min64(8, kc - k);
        __m256 r[8];
        for (int i = 0; i < 8; ++i) {
          if (i >= valid) {
            r[i] = _mm256_setzero_ps();
          } else if (len == 8) {
            r[i] = load8<T>(rows + i * row_bytes, k0 + k);
          } else {
            r[i] = load8_partial<T>(rows + i * row_bytes, k0 + k, len);
          }
        }
        transpose8(r);
        for (int64_t j = 0; j < len; ++j) _mm256_store_ps(d + (k + j) * kNr, r[j]);
      }
    }
  }
}

// Stores the first `count` lanes of v at p (all 8 if count >= 8).
void store_partial(float* p, __m256 v, int64_t count) {
  if (count >= 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  alignas(32) float buffer[8];
  _mm256_store_ps(buffer, v);
  for (int64_t j = 0; j < count; ++j) p[j] = buffer[j];
}

__m256 load_partial(const float* p, int64_t count) {
  if (count >= 8) return _mm256_loadu_ps(p);
  if (count <= 0) return _mm256_setzero_ps();
  return load8_partial_f32(p, count);
}

// c[i * ldc + j] (+)= sum_k a[k * kMr + i] * b[k * kNr + j] for i < MR, j < valid (<= kNr).
template <int MR>
void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t valid, bool accumulate) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b + k * kNr);
    const __m256 b1 = _mm256_load_ps(b + k * kNr + 8);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + k * kMr + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (valid == kNr) {
      if (accumulate) {
        c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(ci));
        c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, c0[i]);
      _mm256_storeu_ps(ci + 8, c1[i]);
    } else {
      if (accumulate) {
        c0[i] = _mm256_add_ps(c0[i], load_partial(ci, valid));
        c1[i] = _mm256_add_ps(c1[i], load_partial(ci + 8, valid - 8));
      }
      store_partial(ci, c0[i], valid);
      if (valid > 8) store_partial(ci + 8, c1[i], valid - 8);
    }
  }
}

using MicroKernel = void (*)(int64_t, const float*, const float*, float*, int64_t, int64_t, bool);

constexpr MicroKernel kMicroKernels[kMr + 1] = {nullptr,         micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,
                                                micro_kernel<4>, micro_kernel<5>, micro_kernel<6>};

struct GemmLayout {
  int64_t n_mtiles;
  int64_t x_tile_floats;
  int64_t n_kblocks;
  size_t x_floats;
  size_t w_floats_per_thread;
};

GemmLayout gemm_layout(int64_t n_in, int64_t n_tokens) {
  GemmLayout layout{};
  layout.n_mtiles = ceil_div(n_tokens, kMr);
  layout.x_tile_floats = round_up(n_in * kMr, 16);
  layout.n_kblocks = ceil_div(n_in, kKc);
  layout.x_floats = size_t(layout.n_mtiles * layout.x_tile_floats);
  layout.w_floats_per_thread = size_t(kNc * kKc);
  return layout;
}

template <WeightType T>
void gemm(const MatmulTask& task) {
  const int64_t n_tokens = task.n_tokens, n_out = task.n_out, n_in = task.n_in;
  const GemmLayout layout = gemm_layout(n_in, n_tokens);
  const size_t row_bytes = size_t(n_in) * kElementBytes<T>;
  const auto* w = static_cast<const uint8_t*>(task.w);
  float* packed_x = task.scratch;
  const bool parallel = n_out * n_in * n_tokens >= kParallelMinWork;
#pragma omp parallel num_threads(task.n_threads) if (parallel)
  {
#pragma omp for schedule(static)
    for (int64_t mt = 0; mt < layout.n_mtiles; ++mt) {
      pack_x_tile(task.x, n_in, mt * kMr, min64(kMr, n_tokens - mt * kMr), packed_x + mt * layout.x_tile_floats);
    }
    const int thread = omp_get_thread_num();
    float* packed_w = task.scratch + layout.x_floats + size_t(thread) * layout.w_floats_per_thread;
    int64_t n_begin = 0, n_end = 0;
    thread_range(n_out, kNr, thread, omp_get_num_threads(), &n_begin, &n_end);
    for (int64_t o0 = n_begin; o0 < n_end; o0 += kNc) {
      const int64_t n_rows = min64(kNc, n_end - o0);
      const int64_t n_panels = ceil_div(n_rows, kNr);
      for (int64_t kb = 0; kb < layout.n_kblocks; ++kb) {
        const int64_t k0 = n_in * kb / layout.n_kblocks;
        const int64_t kc = n_in * (kb + 1) / layout.n_kblocks - k0;
        pack_w_block<T>(w, row_bytes, o0, n_rows, k0, kc, packed_w);
        // A weight panel (kc x kNr) stays in L1 while the packed activations stream past it.
        for (int64_t p = 0; p < n_panels; ++p) {
          const int64_t o = o0 + p * kNr;
          for (int64_t mt = 0; mt < layout.n_mtiles; ++mt) {
            const int64_t t0 = mt * kMr;
            const MicroKernel kernel = kMicroKernels[min64(kMr, n_tokens - t0)];
            const float* a = packed_x + mt * layout.x_tile_floats + k0 * kMr;
            kernel(kc, a, packed_w + p * kc * kNr, task.y + t0 * n_out + o, n_out, min64(kNr, o0 + n_rows - o), kb > 0);
          }
        }
      }
    }
  }
}

template <WeightType T>
void matmul_typed(const MatmulTask& task) {
  if (task.n_tokens < kGemmMinTokens) {
    dot_product_matmul<T>(task);
  } else {
    gemm<T>(task);
  }
}

}  // namespace

size_t scratch_floats_avx2(int64_t n_out, int64_t n_in, int64_t n_tokens, int n_threads) {
  if (n_tokens < kGemmMinTokens) return 0;
  const GemmLayout layout = gemm_layout(n_in, n_tokens);
  return layout.x_floats + size_t(n_threads) * layout.w_floats_per_thread;
}

void matmul_avx2(const MatmulTask& task) {
  switch (task.w_type) {
    case WeightType::f32:
      matmul_typed<WeightType::f32>(task);
      break;
    case WeightType::f16:
      matmul_typed<WeightType::f16>(task);
      break;
    case WeightType::bf16:
      matmul_typed<WeightType::bf16>(task);
      break;
  }
}

namespace {
template <WeightType T>
void to_f32_typed(const void* src, float* dst, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8<T>(bytes, i));
  if (i < n) store_partial(dst + i, load8_partial<T>(bytes, i, n - i), n - i);
}
}  // namespace

void to_f32_avx2(WeightType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case WeightType::f32:
      to_f32_typed<WeightType::f32>(src, dst, n);
      break;
    case WeightType::f16:
      to_f32_typed<WeightType::f16>(src, dst, n);
      break;
    case WeightType::bf16:
      to_f32_typed<WeightType::bf16>(src, dst, n);
      break;
  }
}

float stream_sum_avx2(const float* data, size_t n) {
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(data + i + 8 * j));
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += data[i];
  for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  return sum8(acc[0]) + tail;
}

}  // namespace slm::cpu::kernels
