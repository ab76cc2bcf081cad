// The AVX-512 path (F, BW, DQ, VL, with FMA and F16C). This file is compiled for those extensions
// and its functions are called only after the run-time check in matmul.cpp. It uses no inline code
// shared with other files (only intrinsics and functions of its own, with internal linkage).
//
// Two kernels:
// - few tokens (generation): dot products of weight rows with the activations, converting each
//   weight vector to f32 as it streams past, one row at a time in memory order; rows split across
//   threads in contiguous parts. Memory-bound: the aim is to read weights at the machine's bandwidth.
// - many tokens (prompt processing): a blocked matrix product. The activations are packed once into
//   tiles of kMr tokens, k-major; each thread packs (converts to f32 and transposes) blocks of its
//   weight rows, kNr outputs by up to kKc inputs per panel, and a register-tiled micro-kernel keeps a
//   kMr x kNr tile of outputs in 24 zmm registers (broadcast activation x two weight vectors).
// Accumulation is f32 throughout; only the order of the sums differs from the scalar path.

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

constexpr int kMr = 12;            // tokens per register tile
constexpr int kNr = 32;            // outputs per register tile (two zmm)
constexpr int64_t kKc = 384;       // inputs per packed block (at most)
constexpr int64_t kNc = 128;       // outputs per packed weight block (at most; a multiple of kNr)
constexpr int64_t kPrefetchBytes = 384 << 10;  // the next block of weight rows read ahead into L2 (at most)
constexpr int64_t kGemmMinTokens = 8;  // fewer tokens go to the dot-product kernel, all in one pass
constexpr int64_t kParallelMinWork = 1 << 16;  // multiply-adds below which one thread does it all

int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

__mmask16 tail_mask(int64_t count) { return count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1u); }

// The range [begin, end) of `count` items that thread `thread` of `threads` takes, in multiples of `unit`.
void thread_range(int64_t count, int64_t unit, int thread, int threads, int64_t* begin, int64_t* end) {
  const int64_t units = ceil_div(count, unit);
  *begin = min64(count, units * thread / threads * unit);
  *end = min64(count, units * (thread + 1) / threads * unit);
}

// ---------------------------------------------------------------------------------------------
// Weight loads as f32.

template <WeightType T>
constexpr int64_t kElementBytes = T == WeightType::f32 ? 4 : 2;

__m512 bf16x16_to_f32(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

// 16 weights starting at element k of `row`.
template <WeightType T>
__m512 load16(const uint8_t* row, int64_t k) {
  if constexpr (T == WeightType::f32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(row) + k));
    if constexpr (T == WeightType::f16) return _mm512_cvtph_ps(h);
    return bf16x16_to_f32(h);
  }
}

// The same for the lanes in `mask`, zero in the others; reads nothing outside the mask.
template <WeightType T>
__m512 load16_masked(const uint8_t* row, int64_t k, __mmask16 mask) {
  if constexpr (T == WeightType::f32) {
    return _mm512_maskz_loadu_ps(mask, reinterpret_cast<const float*>(row) + k);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, reinterpret_cast<const uint16_t*>(row) + k);
    if constexpr (T == WeightType::f16) return _mm512_cvtph_ps(h);
    return bf16x16_to_f32(h);
  }
}

// ---------------------------------------------------------------------------------------------
// Dot-product kernel (few tokens).

// y[t * y_stride] = dot(row, x[t]) for t < NT tokens (n_in floats apart).
template <WeightType T, int NT>
void dot_row(const uint8_t* row, const float* x, int64_t n_in, float* y, int64_t y_stride) {
  constexpr int U = NT <= 2 ? 2 : 1;  // vectors per step: enough independent sums either way
  __m512 acc[NT][U];
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) acc[t][u] = _mm512_setzero_ps();

  int64_t k = 0;
  for (; k + 16 * U <= n_in; k += 16 * U) {
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) {
      const __m512 wv = load16<T>(row, k + 16 * u);
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) acc[t][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + t * n_in + k + 16 * u), acc[t][u]);
    }
  }
  for (; k < n_in; k += 16) {
    const __mmask16 mask = tail_mask(n_in - k);
    const __m512 wv = load16_masked<T>(row, k, mask);
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) acc[t][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x + t * n_in + k), acc[t][0]);
  }
#pragma GCC unroll 16
  for (int t = 0; t < NT; ++t) {
#pragma GCC unroll 16
    for (int u = 1; u < U; ++u) acc[t][0] = _mm512_add_ps(acc[t][0], acc[t][u]);
    y[t * y_stride] = _mm512_reduce_add_ps(acc[t][0]);
  }
}

using DotRow = void (*)(const uint8_t*, const float*, int64_t, float*, int64_t);

static_assert(kGemmMinTokens == 8, "one dot-product kernel for each token count below kGemmMinTokens");
template <WeightType T>
constexpr DotRow kDotRow[kGemmMinTokens] = {nullptr,       dot_row<T, 1>, dot_row<T, 2>, dot_row<T, 3>,
                                            dot_row<T, 4>, dot_row<T, 5>, dot_row<T, 6>, dot_row<T, 7>};

// Rows [begin, end) for all tokens. One row at a time, front to back: streaming the weights in
// memory order reads them faster than interleaving several rows (measured), and the row stays in
// L1 while it meets every token.
template <WeightType T>
void dot_rows(const MatmulTask& task, int64_t begin, int64_t end) {
  const size_t row_bytes = size_t(task.n_in) * kElementBytes<T>;
  const auto* w = static_cast<const uint8_t*>(task.w);
  const int64_t n_in = task.n_in, n_out = task.n_out, n_tokens = task.n_tokens;
  const DotRow kernel = kDotRow<T>[n_tokens];
  for (int64_t o = begin; o < end; ++o) {
    kernel(w + size_t(o) * row_bytes, task.x, n_in, task.y + o, n_out);
  }
}

template <WeightType T>
void dot_product_matmul(const MatmulTask& task) {
  const bool parallel = task.n_out * task.n_in * task.n_tokens >= kParallelMinWork;
#pragma omp parallel num_threads(task.n_threads) if (parallel)
  {
    int64_t begin = 0, end = 0;
    thread_range(task.n_out, 16, omp_get_thread_num(), omp_get_num_threads(), &begin, &end);
    dot_rows<T>(task, begin, end);
  }
}

// ---------------------------------------------------------------------------------------------
// Blocked matrix product (many tokens).

// Transposes the 16 x 16 matrix held in r[0..15] (row i in r[i]) in place.
[[gnu::always_inline]] inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + j], 128-bit lane L: rows 4i..4i+3 of column 4L + j.
  __m512 u[16];
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xee);
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  // v[j]: rows 0-3 col j, rows 0-3 col 8+j, rows 4-7 col j, rows 4-7 col 8+j (v[j+4]: columns 4+j, 12+j;
  // v[j+8], v[j+12]: the same for rows 8-15).
  __m512 v[16];
#pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    v[j + 4] = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
    v[j + 8] = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    v[j + 12] = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
  }
#pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm512_shuffle_f32x4(v[j], v[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(v[j], v[j + 8], 0xdd);
    r[j + 4] = _mm512_shuffle_f32x4(v[j + 4], v[j + 12], 0x88);
    r[j + 12] = _mm512_shuffle_f32x4(v[j + 4], v[j + 12], 0xdd);
  }
}

// Packs tokens [t0, t0 + n_rows) (n_rows <= kMr) of x into dst[k * kMr + i] for all k < n_in.
void pack_x_tile(const float* x, int64_t n_in, int64_t t0, int64_t n_rows, float* dst) {
  constexpr __mmask16 kStoreMask = (1u << kMr) - 1u;
  for (int64_t k = 0; k < n_in; k += 16) {
    const int64_t len = min64(16, n_in - k);
    const __mmask16 mask = tail_mask(len);
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      r[i] = i < n_rows ? _mm512_maskz_loadu_ps(mask, x + (t0 + i) * n_in + k) : _mm512_setzero_ps();
    }
    transpose16(r);
    for (int64_t j = 0; j < len; ++j) _mm512_mask_storeu_ps(dst + (k + j) * kMr, kStoreMask, r[j]);
  }
}

// Packs weight rows [o0, o0 + n_rows) (n_rows <= kNc), inputs [k0, k0 + kc), as f32 panels of kNr
// outputs: panel p at dst + p * kc * kNr holds element (k, c) at k * kNr + c. Rows past n_rows are zero.
template <WeightType T>
void pack_w_block(const uint8_t* w, size_t row_bytes, int64_t o0, int64_t n_rows, int64_t k0, int64_t kc, float* dst) {
  const int64_t n_panels = ceil_div(n_rows, kNr);
  for (int64_t p = 0; p < n_panels; ++p) {
    for (int half = 0; half < kNr / 16; ++half) {
      const int64_t first = p * kNr + half * 16;
      const int64_t valid = max64(0, min64(16, n_rows - first));
      float* d = dst + p * kc * kNr + half * 16;
      if (valid == 0) {
        for (int64_t k = 0; k < kc; ++k) _mm512_store_ps(d + k * kNr, _mm512_setzero_ps());
        continue;
      }
      const uint8_t* rows = w + size_t(o0 + first) * row_bytes;
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t len = min64(16, kc - k);
        const __mmask16 mask = tail_mask(len);
        __m512 r[16];
        if (len == 16 && valid == 16) {
#pragma GCC unroll 16
          for (int i = 0; i < 16; ++i) r[i] = load16<T>(rows + i * row_bytes, k0 + k);
        } else {
#pragma GCC unroll 16
          for (int i = 0; i < 16; ++i) {
            r[i] = i < valid ? load16_masked<T>(rows + i * row_bytes, k0 + k, mask) : _mm512_setzero_ps();
          }
        }
        transpose16(r);
        for (int64_t j = 0; j < len; ++j) _mm512_store_ps(d + (k + j) * kNr, r[j]);
      }
    }
  }
}

// c[i * ldc + j] (+)= sum_k a[k * kMr + i] * b[k * kNr + j] for i < MR, j < kNr (lanes in m0, m1).
template <int MR>
void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, __mmask16 m0, __mmask16 m1,
                  bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b + k * kNr);
    const __m512 b1 = _mm512_load_ps(b + k * kNr + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[k * kMr + i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, ci));
      c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, c0[i]);
    _mm512_mask_storeu_ps(ci + 16, m1, c1[i]);
  }
}

using MicroKernel = void (*)(int64_t, const float*, const float*, float*, int64_t, __mmask16, __mmask16, bool);

constexpr MicroKernel kMicroKernels[kMr + 1] = {
    nullptr,         micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,  micro_kernel<4>,  micro_kernel<5>, micro_kernel<6>,
    micro_kernel<7>, micro_kernel<8>, micro_kernel<9>, micro_kernel<10>, micro_kernel<11>, micro_kernel<12>};

struct GemmLayout {
  int64_t n_mtiles;
  int64_t x_tile_floats;  // packed activations of one tile of kMr tokens
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

// Prefetches into L2 the cache lines of bytes [begin, end), part `part` of `parts` equal parts.
void prefetch_part(const uint8_t* begin, const uint8_t* end, int64_t part, int64_t parts) {
  const auto first = reinterpret_cast<uintptr_t>(begin) & ~uintptr_t(63);
  const int64_t lines = int64_t((reinterpret_cast<uintptr_t>(end) - first + 63) / 64);
  for (int64_t line = lines * part / parts; line < lines * (part + 1) / parts; ++line) {
    _mm_prefetch(reinterpret_cast<const char*>(first + uintptr_t(line) * 64), _MM_HINT_T1);
  }
}

template <WeightType T>
void gemm(const MatmulTask& task) {
  const int64_t n_tokens = task.n_tokens, n_out = task.n_out, n_in = task.n_in;
  const GemmLayout layout = gemm_layout(n_in, n_tokens);
  const size_t row_bytes = size_t(n_in) * kElementBytes<T>;
  // Weight rows go in blocks of `nc`, read ahead into L2 while the block before is computed: one
  // block is contiguous in memory, so it streams in order rather than 16 rows at a time.
  const int64_t nc = max64(kNr, min64(kNc, kPrefetchBytes / int64_t(row_bytes) / kNr * kNr));
  const auto* w = static_cast<const uint8_t*>(task.w);
  float* packed_x = task.scratch;
  const bool parallel = n_out * n_in * n_tokens >= kParallelMinWork;
#pragma omp parallel num_threads(task.n_threads) if (parallel)
  {
    const int thread = omp_get_thread_num();
    int64_t n_begin = 0, n_end = 0;
    thread_range(n_out, kNr, thread, omp_get_num_threads(), &n_begin, &n_end);
    if (n_begin < n_end) prefetch_part(w + n_begin * row_bytes, w + min64(n_begin + nc, n_end) * row_bytes, 0, 1);
#pragma omp for schedule(static)
    for (int64_t mt = 0; mt < layout.n_mtiles; ++mt) {
      pack_x_tile(task.x, n_in, mt * kMr, min64(kMr, n_tokens - mt * kMr), packed_x + mt * layout.x_tile_floats);
    }
    float* packed_w = task.scratch + layout.x_floats + size_t(thread) * layout.w_floats_per_thread;
    for (int64_t o0 = n_begin; o0 < n_end; o0 += nc) {
      const int64_t n_rows = min64(nc, n_end - o0);
      const int64_t n_panels = ceil_div(n_rows, kNr);
      const uint8_t* next_begin = w + (o0 + n_rows) * row_bytes;
      const uint8_t* next_end = w + min64(o0 + n_rows + nc, n_end) * row_bytes;
      const int64_t n_steps = layout.n_kblocks * layout.n_mtiles;
      for (int64_t kb = 0; kb < layout.n_kblocks; ++kb) {
        const int64_t k0 = n_in * kb / layout.n_kblocks;
        const int64_t kc = n_in * (kb + 1) / layout.n_kblocks - k0;
        pack_w_block<T>(w, row_bytes, o0, n_rows, k0, kc, packed_w);
        for (int64_t mt = 0; mt < layout.n_mtiles; ++mt) {
          const int64_t t0 = mt * kMr;
          const MicroKernel kernel = kMicroKernels[min64(kMr, n_tokens - t0)];
          const float* a = packed_x + mt * layout.x_tile_floats + k0 * kMr;
          for (int64_t p = 0; p < n_panels; ++p) {
            const int64_t o = o0 + p * kNr;
            const int64_t valid = min64(kNr, o0 + n_rows - o);
            kernel(kc, a, packed_w + p * kc * kNr, task.y + t0 * n_out + o, n_out, tail_mask(valid),
                   tail_mask(max64(0, valid - 16)), kb > 0);
          }
          if (next_begin < next_end) prefetch_part(next_begin, next_end, kb * layout.n_mtiles + mt, n_steps);
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

size_t scratch_floats_avx512(int64_t n_out, int64_t n_in, int64_t n_tokens, int n_threads) {
  if (n_tokens < kGemmMinTokens) return 0;
  const GemmLayout layout = gemm_layout(n_in, n_tokens);
  return layout.x_floats + size_t(n_threads) * layout.w_floats_per_thread;
}

void matmul_avx512(const MatmulTask& task) {
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

void to_f32_avx512(WeightType type, const void* src, float* dst, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  switch (type) {
    case WeightType::f32:
      for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16<WeightType::f32>(bytes, i));
      if (i < n) _mm512_mask_storeu_ps(dst + i, tail_mask(n - i), load16_masked<WeightType::f32>(bytes, i, tail_mask(n - i)));
      break;
    case WeightType::f16:
      for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16<WeightType::f16>(bytes, i));
      if (i < n) _mm512_mask_storeu_ps(dst + i, tail_mask(n - i), load16_masked<WeightType::f16>(bytes, i, tail_mask(n - i)));
      break;
    case WeightType::bf16:
      for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16<WeightType::bf16>(bytes, i));
      if (i < n) _mm512_mask_storeu_ps(dst + i, tail_mask(n - i), load16_masked<WeightType::bf16>(bytes, i, tail_mask(n - i)));
      break;
  }
}

float stream_sum_avx512(const float* data, size_t n) {
  __m512 acc[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) acc[j] = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_add_ps(acc[j], _mm512_loadu_ps(data + i + 16 * j));
  }
  for (; i < n; i += 16) acc[0] = _mm512_add_ps(acc[0], _mm512_maskz_loadu_ps(tail_mask(int64_t(n - i)), data + i));
#pragma GCC unroll 8
  for (int j = 1; j < 8; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  return _mm512_reduce_add_ps(acc[0]);
}

}  // namespace slm::cpu::kernels
