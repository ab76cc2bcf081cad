// The sampler's summary of rows of logits on the device: each row's log-sum-exp and its k largest
// logits with their ids (largest first, equal logits: lower id first, NaN never taken), so that only
// these cross to the host instead of whole rows of the vocabulary.
//
// Two launches. First every (row, chunk of kChunk logits) block loads its chunk into shared memory,
// takes the chunk's max and sum of exponentials, and picks the chunk's k best by k rounds of a block
// argmax, each round marking its winner NaN (taken). Then one block per row merges the chunks' sums
// and picks the k best of their k * n_chunks candidates the same way.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/grid_dependency.cuh"
#include "slm/backend/cuda/internal.hpp"

namespace slm::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 4096;
constexpr int kMaxChunks = 128;  // vocabularies up to 512k logits
constexpr int kMaxK = kTopLogitsMaxK;

struct Best {
  float value;
  int32_t id;
};

// a before b: larger, or equal and a lower id; NaN values and id INT_MAX never win.
__device__ __forceinline__ bool before(float av, int32_t aid, float bv, int32_t bid) {
  return av > bv || (av == bv && aid < bid);
}

// The best of this thread's entries i = threadIdx.x, + blockDim.x, ... of values/ids[0, n).
__device__ __forceinline__ Best thread_best(const float* values, const int32_t* ids, int n) {
  Best b{-INFINITY, INT_MAX};
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) {
    if (before(values[i], ids[i], b.value, b.id)) b = {values[i], ids[i]};
  }
  return b;
}

// Picks the k best of values/ids[0, n) (shared memory, modified: winners become NaN) into out_*
// (id -1 past the last entry when fewer than k are not NaN). All threads take part.
__device__ void select_top(float* values, int32_t* ids, int n, int k, float* out_values, int32_t* out_ids) {
  __shared__ float warp_values[kThreads / 32];
  __shared__ int32_t warp_ids[kThreads / 32];
  __shared__ Best winner;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  Best mine = thread_best(values, ids, n);
  for (int round = 0; round < k; ++round) {
    Best b = mine;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, b.value, offset);
      const int32_t id = __shfl_xor_sync(0xffffffffu, b.id, offset);
      if (before(v, id, b.value, b.id)) b = {v, id};
    }
    if (lane == 0) {
      warp_values[warp] = b.value;
      warp_ids[warp] = b.id;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < n_warps; ++w) {
        if (before(warp_values[w], warp_ids[w], b.value, b.id)) b = {warp_values[w], warp_ids[w]};
      }
      winner = b;
      out_values[round] = b.value;
      out_ids[round] = b.id == INT_MAX ? -1 : b.id;
    }
    __syncthreads();
    const Best w = winner;
    if (w.id == INT_MAX) {  // nothing left: the rest are empty
      for (int r = round + 1 + int(threadIdx.x); r < k; r += int(blockDim.x)) {
        out_values[r] = -INFINITY;
        out_ids[r] = -1;
      }
      return;
    }
    if (mine.id == w.id && mine.value == w.value) {  // the winner was this thread's: take it, find the next
      for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) {
        if (ids[i] == w.id) values[i] = NAN;
      }
      mine = thread_best(values, ids, n);
    }
    __syncthreads();  // warp_values are rewritten next round
  }
}

// grid (n_chunks, rows): partial[row][chunk] = {max, sum of exp(x - max)}, top[row][chunk][k].
__global__ void top_chunks_kernel(const float* logits, int64_t vocab, int k, float2* partial, float* top_values,
                                  int32_t* top_ids) {
  wait_for_previous_kernel();
  __shared__ float values[kChunk];
  __shared__ int32_t ids[kChunk];
  __shared__ float reduce[kThreads / 32];
  const int64_t row = blockIdx.y;
  const int64_t begin = int64_t(blockIdx.x) * kChunk;
  const int n = int(vocab - begin < kChunk ? vocab - begin : kChunk);
  const float* x = logits + row * vocab + begin;
  float m = -INFINITY;
  for (int i = int(threadIdx.x); i < n; i += kThreads) {
    const float v = x[i];
    values[i] = v;
    ids[i] = int32_t(begin + i);
    if (v > m) m = v;  // NaN skipped
  }
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  if (lane == 0) reduce[warp] = m;
  __syncthreads();
  m = reduce[0];
  for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, reduce[w]);
  float s = 0.0f;
  if (m != -INFINITY) {
    for (int i = int(threadIdx.x); i < n; i += kThreads) {
      const float v = values[i];
      if (v == v) s += expf(v - m);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
  __syncthreads();  // every thread has read reduce[] for m
  if (lane == 0) reduce[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) total += reduce[w];
    partial[row * gridDim.x + blockIdx.x] = make_float2(m, total);
  }
  const int64_t at = (row * gridDim.x + blockIdx.x) * k;
  select_top(values, ids, n, k, top_values + at, top_ids + at);
}

// One block per row: lse[row] and the row's k best of the chunks' candidates.
__global__ void top_merge_kernel(const float2* partial, const float* top_values, const int32_t* top_ids, int n_chunks,
                                 int k, int k_stride, float* lse, float* out_values, int32_t* out_ids) {
  wait_for_previous_kernel();
  extern __shared__ float shared[];
  const int n = n_chunks * k;
  float* values = shared;
  int32_t* ids = reinterpret_cast<int32_t*>(shared + n);
  const int64_t row = blockIdx.x;
  const int64_t at = row * n;
  for (int i = int(threadIdx.x); i < n; i += kThreads) {
    const int32_t id = top_ids[at + i];
    values[i] = id < 0 ? NAN : top_values[at + i];
    ids[i] = id < 0 ? INT_MAX : id;
  }
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    for (int c = 0; c < n_chunks; ++c) m = fmaxf(m, partial[row * n_chunks + c].x);
    float s = 0.0f;
    if (m != -INFINITY) {
      for (int c = 0; c < n_chunks; ++c) {
        const float2 p = partial[row * n_chunks + c];
        if (p.x != -INFINITY) s += p.y * expf(p.x - m);
      }
    }
    lse[row] = m == -INFINITY ? -INFINITY : m + logf(s);
  }
  __syncthreads();
  select_top(values, ids, n, k, out_values + row * k_stride, out_ids + row * k_stride);
}

}  // namespace

int64_t top_logits_max_vocab() { return int64_t(kMaxChunks) * kChunk; }

size_t top_logits_scratch_bytes(int64_t rows, int64_t vocab, int k) {
  const int64_t chunks = (vocab + kChunk - 1) / kChunk;
  return size_t(rows * chunks) * (sizeof(float2) + size_t(k) * (sizeof(float) + sizeof(int32_t)));
}

void top_logits(const float* logits, int64_t rows, int64_t vocab, int k, float* lse, int32_t* ids, float* values,
                void* scratch, Stream stream) {
  const int64_t chunks = (vocab + kChunk - 1) / kChunk;
  if (rows <= 0 || rows > 65535 || vocab <= 0 || chunks > kMaxChunks || k <= 0 || k > kMaxK) {
    detail::fail_argument("top_logits: expected 1 to 65535 rows, a vocabulary of 1 to " +
                          std::to_string(kMaxChunks * kChunk) + " and k of 1 to " + std::to_string(kMaxK) +
                          ", found " + std::to_string(rows) + " rows, " + std::to_string(vocab) + ", k " +
                          std::to_string(k));
  }
  auto* partial = static_cast<float2*>(scratch);
  auto* top_values = reinterpret_cast<float*>(partial + rows * chunks);
  auto* top_ids = reinterpret_cast<int32_t*>(top_values + rows * chunks * k);
  top_chunks_kernel<<<dim3(unsigned(chunks), unsigned(rows)), kThreads, 0, stream>>>(logits, vocab, k, partial,
                                                                                    top_values, top_ids);
  detail::check_launch("top_logits chunks");
  const size_t shared = size_t(chunks * k) * (sizeof(float) + sizeof(int32_t));
  static const bool opted_in = [] {
    const bool ok = cudaFuncSetAttribute(top_merge_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         kMaxChunks * kMaxK * int(sizeof(float) + sizeof(int32_t))) == cudaSuccess;
    if (!ok) (void)cudaGetLastError();  // not left pending for the next launch check
    return ok;
  }();
  if (!opted_in && shared > 48 * 1024) detail::fail_unsupported("top_logits: the device refused 64 KiB of shared memory");
  top_merge_kernel<<<unsigned(rows), kThreads, shared, stream>>>(partial, top_values, top_ids, int(chunks), k, k, lse,
                                                                 values, ids);
  detail::check_launch("top_logits merge");
}

}  // namespace slm::cuda
