// Element-wise operations, RMSNorm, RoPE, the KV-cache write, attention of one query token, argmax
// and the activation conversions for cuBLAS, on f32 activations.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/grid_dependency.cuh"
#include "slm/backend/cuda/internal.hpp"

namespace slm::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kArgmaxBlocks = 128;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum (or max) over the block; every thread gets the result. shared: >= 32 floats.
template <bool kMax>
__device__ float block_reduce(float v, float* shared) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int n_warps = int(blockDim.x + 31) >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // shared may still be read by a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < n_warps ? shared[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(v) : warp_sum(v);
}

int grid_for(int64_t total, int threads = kThreads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return int(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

#define SLM_GRID_LOOP(k, total) \
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < (total); k += int64_t(gridDim.x) * blockDim.x)

__global__ void rms_norm_kernel(const float* x, const float* weight, float* y, int64_t n, float eps) {
  wait_for_previous_kernel();
  __shared__ float shared[32];
  const float* row = x + int64_t(blockIdx.x) * n;
  float* out = y + int64_t(blockIdx.x) * n;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum = fmaf(row[i], row[i], sum);
  sum = block_reduce<false>(sum, shared);
  const float inv = rsqrtf(sum / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) out[i] = row[i] * inv * weight[i];
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n) x[k] += y[k];
}

__global__ void add_bias_kernel(float* x, const float* bias, int64_t n_rows, int64_t n) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n_rows * n) x[k] += bias[k % n];
}

__global__ void silu_mul_kernel(float* gate, const float* up, int64_t n) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n) {
    const float g = gate[k];
    gate[k] = g / (1.0f + expf(-g)) * up[k];
  }
}

__device__ __forceinline__ float gelu_tanh(float g) {
  const float c = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * g * (1.0f + tanhf(c * (g + 0.044715f * g * g * g)));
}

__global__ void gelu_tanh_mul_kernel(float* gate, const float* up, int64_t n) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n) gate[k] = gelu_tanh(gate[k]) * up[k];
}

__global__ void gelu_tanh_mul_rows_kernel(const float* gate_up, int64_t n_rows, int64_t n, float* out) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n_rows * n) {
    const int64_t t = k / n, i = k - t * n;
    out[k] = gelu_tanh(gate_up[t * 2 * n + i]) * gate_up[t * 2 * n + n + i];
  }
}

__global__ void scale_kernel(float* x, float s, int64_t n) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n) x[k] *= s;
}

__global__ void rope_kernel(float* x, int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t half,
                            const int32_t* positions, const float* inv_freq, bool interleaved) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n_rows * n_heads * half) {
    const int64_t i = k % half, head = k / half, t = head / n_heads;
    double sin_v, cos_v;
    sincos(double(positions[t]) * double(inv_freq[i]), &sin_v, &cos_v);
    const float c = float(cos_v), s = float(sin_v);
    float* v = x + head * head_dim;
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
}

template <typename T>
__device__ __forceinline__ float to_float(T v) {
  if constexpr (sizeof(T) == 2) {
    return __half2float(v);
  } else {
    return v;
  }
}

template <typename T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (sizeof(T) == 2) {
    return __float2half_rn(v);
  } else {
    return v;
  }
}

template <typename T>
__global__ void store_kv_kernel(const float* k, const float* v, T* k_cache, T* v_cache, int64_t kv_stride, int64_t n,
                                const int32_t* position, int64_t capacity) {
  wait_for_previous_kernel();
  const int64_t pos = *position;
  if (pos < 0 || pos >= capacity) return;  // nothing outside the cache is written
  const int64_t row = pos * kv_stride;
  SLM_GRID_LOOP(i, n) {
    k_cache[row + i] = from_float<T>(k[i]);
    v_cache[row + i] = from_float<T>(v[i]);
  }
}

// Rows of [q heads | k heads | v heads] (head_dim values each; row t at position first + t, plus
// *position when given): bias added, q and k heads rotated over their first 2 * half dimensions,
// k and v heads written to the cache rows. One thread per pair of values.
template <typename T>
__global__ void qkv_rows_kernel(float* qkv, const float* bias, int64_t n_rows, int n_heads, int n_kv_heads, int hd,
                                int half, const int32_t* position, int64_t first, const float* inv_freq,
                                bool interleaved, T* k_cache, T* v_cache, int64_t kv_stride, int64_t capacity,
                                float cos_sin_scale, const int32_t* row_positions, const int32_t* cache_rows) {
  wait_for_previous_kernel();
  const int heads = n_heads + 2 * n_kv_heads, pairs = hd / 2;
  const int64_t per_row = int64_t(heads) * pairs;
  SLM_GRID_LOOP(k, n_rows * per_row) {
    const int64_t t = k / per_row;
    const int rem = int(k - t * per_row);
    const int head = rem / pairs, i = rem - head * pairs;
    const int64_t pos = row_positions != nullptr ? int64_t(row_positions[t])
                                                 : (position != nullptr ? int64_t(*position) : 0) + first + t;
    const int64_t cache_row = cache_rows != nullptr ? int64_t(cache_rows[t]) : pos;
    float* v = qkv + t * int64_t(heads) * hd + int64_t(head) * hd;
    const bool is_v = head >= n_heads + n_kv_heads;
    const bool rotate = !is_v && i < half;
    int a = 2 * i, b = 2 * i + 1;  // v heads and the dimensions past the rotated ones
    if (rotate) {
      a = interleaved ? 2 * i : i;
      b = interleaved ? 2 * i + 1 : i + half;
    }
    float x0 = v[a], x1 = v[b];
    if (bias != nullptr) {
      x0 += bias[head * hd + a];
      x1 += bias[head * hd + b];
    }
    if (rotate) {
      double sin_v, cos_v;
      sincos(double(pos) * double(inv_freq[i]), &sin_v, &cos_v);
      const float c = float(cos_v) * cos_sin_scale, s = float(sin_v) * cos_sin_scale;
      const float r0 = x0 * c - x1 * s, r1 = x0 * s + x1 * c;
      x0 = r0;
      x1 = r1;
    }
    v[a] = x0;
    v[b] = x1;
    if (head >= n_heads && cache_row >= 0 && cache_row < capacity) {
      T* cache = (is_v ? v_cache : k_cache) + cache_row * kv_stride + int64_t(head - n_heads - (is_v ? n_kv_heads : 0)) * hd;
      cache[a] = from_float<T>(x0);
      cache[b] = from_float<T>(x1);
    }
  }
}

// One warp per (row, head) of the first n_norm heads of each row (row_stride floats apart): the
// head's RMSNorm over head_dim, with q_weight for the first n_q heads and k_weight for the rest.
__global__ void head_rms_norm_kernel(float* x, int64_t n_rows, int64_t row_stride, int n_q, int n_norm, int hd,
                                     const float* q_weight, const float* k_weight, float eps) {
  wait_for_previous_kernel();
  const int lane = int(threadIdx.x) & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t k = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); k < n_rows * n_norm; k += warps) {
    const int64_t t = k / n_norm;
    const int head = int(k - t * n_norm);
    float* v = x + t * row_stride + int64_t(head) * hd;
    const float* w = head < n_q ? q_weight : k_weight;
    float sum = 0.0f;
    for (int i = lane; i < hd; i += 32) sum = fmaf(v[i], v[i], sum);
    const float inv = rsqrtf(warp_sum(sum) / float(hd) + eps);
    for (int i = lane; i < hd; i += 32) v[i] = v[i] * inv * w[i];
  }
}

__global__ void silu_mul_rows_kernel(const float* gate_up, int64_t n_rows, int64_t n, float* out) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n_rows * n) {
    const int64_t t = k / n, i = k - t * n;
    const float g = gate_up[t * 2 * n + i];
    out[k] = g / (1.0f + expf(-g)) * gate_up[t * 2 * n + n + i];
  }
}

constexpr int kKeysPerSplit = 128;  // keys of one block of attention_decode (= its threads)
constexpr int kAttentionThreads = 128;

// Block (head, split): scores of the keys [split * 256, ...) within [start, position], their maximum m,
// the sum l of exp(score - m) and the unnormalised sum of exp(score - m) * value, into scratch:
// partial[head][split][head_dim], then stats[head][split] = (m, l).
template <typename T>
__global__ void __launch_bounds__(kAttentionThreads) attention_split_kernel(
    const float* q, const T* k_cache, const T* v_cache, int64_t kv_stride, const int32_t* position, int64_t capacity,
    int64_t n_splits, AttentionShape shape, float* partial, float* stats) {
  wait_for_previous_kernel();
  __shared__ float scores[kKeysPerSplit];
  __shared__ float reduce[32];
  extern __shared__ float q_shared[];  // head_dim
  const int64_t head = blockIdx.x, split = blockIdx.y;
  const int64_t hd = shape.head_dim;
  const int64_t kv_head = head / (shape.n_heads / shape.n_kv_heads);
  const int64_t pos = *position;  // outside [0, capacity): no keys, and the merge gives NaN
  const int64_t start = shape.sliding_window > 0 ? max(int64_t(0), pos - shape.sliding_window + 1) : 0;
  const int64_t first = max(start, split * kKeysPerSplit);
  const int64_t last = min(pos, split * kKeysPerSplit + kKeysPerSplit - 1);
  float* out = partial + (head * n_splits + split) * hd;
  float* stat = stats + (head * n_splits + split) * 2;
  if (first > last || pos >= capacity) {
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) out[d] = 0.0f;
    if (threadIdx.x == 0) {
      stat[0] = -INFINITY;
      stat[1] = 0.0f;
    }
    return;
  }
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) q_shared[d] = q[head * hd + d];
  __syncthreads();
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int n_warps = int(blockDim.x) >> 5;
  const int64_t n_keys = last - first + 1;
  for (int64_t j = warp; j < n_keys; j += n_warps) {
    const T* key = k_cache + (first + j) * kv_stride + kv_head * hd;
    float dot = 0.0f;
    for (int64_t d = lane; d < hd; d += 32) dot = fmaf(q_shared[d], to_float(key[d]), dot);
    dot = warp_sum(dot);
    if (lane == 0) scores[j] = dot * shape.scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n_keys; j += blockDim.x) m = fmaxf(m, scores[j]);
  m = block_reduce<true>(m, reduce);
  float l = 0.0f;
  for (int64_t j = threadIdx.x; j < n_keys; j += blockDim.x) {
    const float p = expf(scores[j] - m);
    scores[j] = p;
    l += p;
  }
  l = block_reduce<false>(l, reduce);  // its barriers also publish scores[]
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    const T* value = v_cache + first * kv_stride + kv_head * hd + d;
    float acc = 0.0f;
    for (int64_t j = 0; j < n_keys; ++j) acc = fmaf(scores[j], to_float(value[j * kv_stride]), acc);
    out[d] = acc;
  }
  if (threadIdx.x == 0) {
    stat[0] = m;
    stat[1] = l;
  }
}

// Four values of a cache row as floats (16 bytes of f32, 8 of f16; the caller keeps them aligned).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const __half* p) {
  const uint2 bits = *reinterpret_cast<const uint2*>(p);
  const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&bits.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&bits.y));
  return make_float4(a.x, a.y, b.x, b.y);
}

// One split of attention_split_vec_kernel over keys [first, last] (at least one): its unnormalized
// output and {max, sum} into out and stat, or, with `direct`, the normalized output there (the split
// is the head's only one).
template <typename T>
__device__ void split_block(const float* q, const T* k_cache, const T* v_cache, int64_t kv_stride, int64_t first,
                            int64_t last, int64_t head, const AttentionShape& shape, float* shared, float* probs,
                            float* reduce, float* out, float* stat, float* direct) {
  const int tid = int(threadIdx.x);
  const int hd = int(shape.head_dim);
  const int64_t kv_col = (head / (shape.n_heads / shape.n_kv_heads)) * hd;
  float* q_shared = shared;
  float* sums = shared + hd;
  for (int d = tid; d < hd; d += blockDim.x) q_shared[d] = q[head * hd + d];
  __syncthreads();
  const int n_keys = int(last - first + 1);
  float score = -INFINITY;
  if (tid < n_keys) {
    const T* key = k_cache + (first + tid) * kv_stride + kv_col;
    float a = 0.0f, b = 0.0f;
    for (int d = 0; d < hd; d += 8) {
      const float4 k0 = load4(key + d);
      const float4 q0 = *reinterpret_cast<const float4*>(q_shared + d);
      a = fmaf(q0.x, k0.x, fmaf(q0.y, k0.y, fmaf(q0.z, k0.z, fmaf(q0.w, k0.w, a))));
      if (d + 4 < hd) {
        const float4 k1 = load4(key + d + 4);
        const float4 q1 = *reinterpret_cast<const float4*>(q_shared + d + 4);
        b = fmaf(q1.x, k1.x, fmaf(q1.y, k1.y, fmaf(q1.z, k1.z, fmaf(q1.w, k1.w, b))));
      }
    }
    score = (a + b) * shape.scale;
  }
  const float m = block_reduce<true>(score, reduce);
  const float p = tid < n_keys ? expf(score - m) : 0.0f;
  probs[tid] = p;
  const float l = block_reduce<false>(p, reduce);  // its barriers also publish probs[]
  const int quads = hd / 4, groups = int(blockDim.x) / quads;
  const int g = tid / quads, c = tid - g * quads;
  if (g < groups) {
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const T* value = v_cache + first * kv_stride + kv_col + 4 * c;
#pragma unroll 4
    for (int j = g; j < n_keys; j += groups) {
      const float4 v = load4(value + j * kv_stride);
      const float w = probs[j];
      acc.x = fmaf(w, v.x, acc.x);
      acc.y = fmaf(w, v.y, acc.y);
      acc.z = fmaf(w, v.z, acc.z);
      acc.w = fmaf(w, v.w, acc.w);
    }
    *reinterpret_cast<float4*>(sums + g * hd + 4 * c) = acc;
  }
  __syncthreads();
  for (int d = tid; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int gg = 0; gg < groups; ++gg) acc += sums[gg * hd + d];
    if (direct != nullptr) {
      direct[d] = acc / l;
    } else {
      out[d] = acc;
    }
  }
  if (tid == 0 && direct == nullptr) {
    stat[0] = m;
    stat[1] = l;
  }
}

// The same split as attention_split_kernel with every load in flight at once (head_dim and kv_stride
// multiples of 4): thread j scores key j of the split alone (its row in 16-byte pieces against q in
// shared memory), then the threads split as (key group, 4 dimensions) for the weighted sum of values,
// and the key groups are added in shared memory.
template <typename T>
__global__ void __launch_bounds__(kKeysPerSplit) attention_split_vec_kernel(
    const float* q, const T* k_cache, const T* v_cache, int64_t kv_stride, const int32_t* position, int64_t capacity,
    int64_t n_splits, AttentionShape shape, float* partial, float* stats, unsigned int* done, float* result) {
  wait_for_previous_kernel();
  __shared__ float probs[kKeysPerSplit];
  __shared__ bool last_block;
  __shared__ float reduce[32];
  extern __shared__ float shared[];  // q [head_dim], then the key groups' sums [groups][head_dim]
  const int hd = int(shape.head_dim);
  const int64_t head = blockIdx.x, split = blockIdx.y;
  const int64_t pos = *position;
  // The grid covers the capacity (one graph for every position); only the splits holding keys of
  // this step work: [first_split, last_split]. The others return at once.
  if (pos < 0 || pos >= capacity) {  // no keys: the output is undefined, as with an empty softmax
    if (split == 0) {
      for (int d = int(threadIdx.x); d < hd; d += blockDim.x) result[head * hd + d] = NAN;
    }
    return;
  }
  const int64_t start = shape.sliding_window > 0 ? max(int64_t(0), pos - shape.sliding_window + 1) : 0;
  const int64_t first_split = start / kKeysPerSplit, last_split = pos / kKeysPerSplit;
  if (split < first_split || split > last_split) return;
  const int64_t n_active = last_split - first_split + 1;
  const int64_t first = max(start, split * kKeysPerSplit);
  const int64_t last = min(pos, split * kKeysPerSplit + kKeysPerSplit - 1);
  float* out = partial + (head * n_splits + split) * hd;
  float* stat = stats + (head * n_splits + split) * 2;
  const int tid = int(threadIdx.x);
  split_block<T>(q, k_cache, v_cache, kv_stride, first, last, head, shape, shared, probs, reduce, out, stat,
                 n_active == 1 ? result + head * hd : nullptr);
  if (n_active == 1) return;
  // The head's last block to finish merges its splits (no separate launch); it resets the counter.
  __threadfence();
  __syncthreads();
  if (tid == 0) last_block = atomicAdd(done + head, 1u) == unsigned(n_active) - 1;
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  const float* head_stats = stats + head * n_splits * 2;
  float m = -INFINITY;
  for (int64_t sp = first_split; sp <= last_split; ++sp) m = fmaxf(m, __ldcg(head_stats + 2 * sp));
  float l = 0.0f;
  for (int64_t sp = first_split; sp <= last_split; ++sp) {
    const float ls = __ldcg(head_stats + 2 * sp + 1);
    if (ls > 0.0f) l += expf(__ldcg(head_stats + 2 * sp) - m) * ls;
  }
  const float inv = 1.0f / l;
  for (int d = tid; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t sp = first_split; sp <= last_split; ++sp) {
      const float ls = __ldcg(head_stats + 2 * sp + 1);
      if (ls > 0.0f) acc = fmaf(expf(__ldcg(head_stats + 2 * sp) - m), __ldcg(partial + (head * n_splits + sp) * hd + d), acc);
    }
    result[head * hd + d] = acc * inv;
  }
  if (tid == 0) done[head] = 0;
}

// out[head] = sum_s exp(m_s - M) partial_s / sum_s exp(m_s - M) l_s.
__global__ void attention_merge_kernel(const float* partial, const float* stats, int64_t n_splits, int64_t hd,
                                       float* out) {
  wait_for_previous_kernel();
  const int64_t head = blockIdx.x;
  const float* stat = stats + head * n_splits * 2;
  float m = -INFINITY;
  for (int64_t s = 0; s < n_splits; ++s) m = fmaxf(m, stat[2 * s]);
  float l = 0.0f;
  for (int64_t s = 0; s < n_splits; ++s) {
    if (stat[2 * s + 1] > 0.0f) l += expf(stat[2 * s] - m) * stat[2 * s + 1];
  }
  const float inv = 1.0f / l;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t s = 0; s < n_splits; ++s) {
      if (stat[2 * s + 1] > 0.0f) acc = fmaf(expf(stat[2 * s] - m), partial[(head * n_splits + s) * hd + d], acc);
    }
    out[head * hd + d] = acc * inv;
  }
}

// One block: the first index of the largest value (NaN skipped); -1 when there is none.
__global__ void argmax_kernel(const float* x, int64_t n, int32_t* index) {
  wait_for_previous_kernel();
  __shared__ float best_values[32];
  __shared__ int64_t best_indices[32];
  float best = -INFINITY;
  int64_t best_index = INT64_MAX;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = x[i];
    if (v > best || (v == best && i < best_index)) {
      best = v;
      best_index = i;
    }
  }
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int64_t other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
    if (other > best || (other == best && other_index < best_index)) {
      best = other;
      best_index = other_index;
    }
  }
  if (lane == 0) {
    best_values[warp] = best;
    best_indices[warp] = best_index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const int n_warps = int(blockDim.x) >> 5;
    for (int w = 1; w < n_warps; ++w) {
      if (best_values[w] > best || (best_values[w] == best && best_indices[w] < best_index)) {
        best = best_values[w];
        best_index = best_indices[w];
      }
    }
    *index = best_index == INT64_MAX ? -1 : int32_t(best_index);
  }
}

// Many blocks: each writes its (value, index) to scratch, and the block that finishes last (a ticket
// counter in scratch, reset by that block) combines them, with the same rules as argmax_kernel.
struct ArgmaxScratch {
  float values[kArgmaxBlocks];
  int32_t indices[kArgmaxBlocks];
  unsigned int done;
};

__device__ __forceinline__ void better(float& best, int64_t& best_index, float v, int64_t i) {
  if (v > best || (v == best && i < best_index)) {
    best = v;
    best_index = i;
  }
}

__global__ void argmax_blocks_kernel(const float* x, int64_t n, int32_t* index, ArgmaxScratch* scratch) {
  wait_for_previous_kernel();
  __shared__ float values[32];
  __shared__ int64_t indices[32];
  __shared__ bool last;
  float best = -INFINITY;
  int64_t best_index = INT64_MAX;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    better(best, best_index, x[i], i);
  }
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) {
    better(best, best_index, __shfl_xor_sync(0xffffffffu, best, offset), __shfl_xor_sync(0xffffffffu, best_index, offset));
  }
  if (lane == 0) {
    values[warp] = best;
    indices[warp] = best_index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < n_warps; ++w) better(best, best_index, values[w], indices[w]);
    scratch->values[blockIdx.x] = best;
    scratch->indices[blockIdx.x] = best_index == INT64_MAX ? -1 : int32_t(best_index);
    __threadfence();
    last = atomicAdd(&scratch->done, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  best = -INFINITY;
  best_index = INT64_MAX;
  for (int b = int(threadIdx.x); b < int(gridDim.x); b += int(blockDim.x)) {
    const int32_t i = __ldcg(&scratch->indices[b]);
    if (i >= 0) better(best, best_index, __ldcg(&scratch->values[b]), i);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    better(best, best_index, __shfl_xor_sync(0xffffffffu, best, offset), __shfl_xor_sync(0xffffffffu, best_index, offset));
  }
  __syncthreads();
  if (lane == 0) {
    values[warp] = best;
    indices[warp] = best_index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < n_warps; ++w) better(best, best_index, values[w], indices[w]);
    *index = best_index == INT64_MAX ? -1 : int32_t(best_index);
    scratch->done = 0;
  }
}

__global__ void convert_half_kernel(const float* x, __half* dst, int64_t n) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n) dst[k] = __float2half_rn(x[k]);
}

__global__ void convert_bf16_kernel(const float* x, __nv_bfloat16* dst, int64_t n) {
  wait_for_previous_kernel();
  SLM_GRID_LOOP(k, n) dst[k] = __float2bfloat16_rn(x[k]);
}

void require(bool ok, const char* message) {
  if (!ok) detail::fail_argument(message);
}

}  // namespace

void rms_norm(const float* x, const float* weight, float* y, int64_t n_rows, int64_t n, float eps, Stream stream) {
  require(n_rows >= 0 && n > 0, "rms_norm: expected n_rows >= 0 and n > 0");
  if (n_rows == 0) return;
  require(x != nullptr && weight != nullptr && y != nullptr, "rms_norm: null pointer");
  require(n_rows <= 0x7fffffff, "rms_norm: too many rows");
  rms_norm_kernel<<<unsigned(n_rows), kThreads, 0, stream>>>(x, weight, y, n, eps);
  detail::check_launch("rms_norm");
}

void head_rms_norm(float* x, int64_t n_rows, int64_t row_stride, int64_t n_q_heads, int64_t n_k_heads,
                   int64_t head_dim, const float* q_weight, const float* k_weight, float eps, Stream stream) {
  require(n_rows >= 0 && n_q_heads >= 0 && n_k_heads >= 0 && head_dim > 0, "head_rms_norm: expected non-negative counts");
  require(row_stride >= (n_q_heads + n_k_heads) * head_dim, "head_rms_norm: row_stride shorter than the heads");
  require(n_q_heads + n_k_heads <= 0x7fffffff / head_dim, "head_rms_norm: too many heads");
  const int64_t total = n_rows * (n_q_heads + n_k_heads);
  if (total == 0) return;
  require(x != nullptr && (n_q_heads == 0 || q_weight != nullptr) && (n_k_heads == 0 || k_weight != nullptr),
          "head_rms_norm: null pointer");
  head_rms_norm_kernel<<<grid_for(total * 32), kThreads, 0, stream>>>(
      x, n_rows, row_stride, int(n_q_heads), int(n_q_heads + n_k_heads), int(head_dim), q_weight, k_weight, eps);
  detail::check_launch("head_rms_norm");
}

void add(float* x, const float* y, int64_t n, Stream stream) {
  if (n <= 0) return;
  require(x != nullptr && y != nullptr, "add: null pointer");
  add_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, y, n);
  detail::check_launch("add");
}

void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n, Stream stream) {
  if (n_rows <= 0 || n <= 0) return;
  require(x != nullptr && bias != nullptr, "add_bias: null pointer");
  add_bias_kernel<<<grid_for(n_rows * n), kThreads, 0, stream>>>(x, bias, n_rows, n);
  detail::check_launch("add_bias");
}

void silu_mul(float* gate, const float* up, int64_t n, Stream stream) {
  if (n <= 0) return;
  require(gate != nullptr && up != nullptr, "silu_mul: null pointer");
  silu_mul_kernel<<<grid_for(n), kThreads, 0, stream>>>(gate, up, n);
  detail::check_launch("silu_mul");
}

void gelu_tanh_mul(float* gate, const float* up, int64_t n, Stream stream) {
  if (n <= 0) return;
  require(gate != nullptr && up != nullptr, "gelu_tanh_mul: null pointer");
  gelu_tanh_mul_kernel<<<grid_for(n), kThreads, 0, stream>>>(gate, up, n);
  detail::check_launch("gelu_tanh_mul");
}

void gelu_tanh_mul_rows(const float* gate_up, int64_t n_rows, int64_t n, float* out, Stream stream) {
  if (n_rows <= 0 || n <= 0) return;
  require(gate_up != nullptr && out != nullptr, "gelu_tanh_mul_rows: null pointer");
  gelu_tanh_mul_rows_kernel<<<grid_for(n_rows * n), kThreads, 0, stream>>>(gate_up, n_rows, n, out);
  detail::check_launch("gelu_tanh_mul_rows");
}

void scale(float* x, float s, int64_t n, Stream stream) {
  if (n <= 0) return;
  require(x != nullptr, "scale: null pointer");
  scale_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, s, n);
  detail::check_launch("scale");
}

void rope(float* x, int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const int32_t* positions,
          const float* inv_freq, bool interleaved, Stream stream) {
  require(rope_dim > 0 && rope_dim % 2 == 0 && rope_dim <= head_dim, "rope: expected an even rope_dim <= head_dim");
  if (n_rows <= 0 || n_heads <= 0) return;
  require(x != nullptr && positions != nullptr && inv_freq != nullptr, "rope: null pointer");
  const int64_t half = rope_dim / 2;
  rope_kernel<<<grid_for(n_rows * n_heads * half), kThreads, 0, stream>>>(x, n_rows, n_heads, head_dim, half,
                                                                          positions, inv_freq, interleaved);
  detail::check_launch("rope");
}

void store_kv(const float* k, const float* v, void* k_cache, void* v_cache, DType kv_type, int64_t kv_stride,
              int64_t n, const int32_t* position, int64_t capacity, Stream stream) {
  require(kv_type == DType::F32 || kv_type == DType::F16, "store_kv: expected an f32 or f16 cache");
  require(n > 0 && n <= kv_stride, "store_kv: expected 0 < n <= kv_stride");
  require(k != nullptr && v != nullptr && k_cache != nullptr && v_cache != nullptr && position != nullptr,
          "store_kv: null pointer");
  if (kv_type == DType::F32) {
    store_kv_kernel<float><<<grid_for(n), kThreads, 0, stream>>>(k, v, static_cast<float*>(k_cache),
                                                                 static_cast<float*>(v_cache), kv_stride, n, position,
                                                                 capacity);
  } else {
    store_kv_kernel<__half><<<grid_for(n), kThreads, 0, stream>>>(k, v, static_cast<__half*>(k_cache),
                                                                  static_cast<__half*>(v_cache), kv_stride, n, position,
                                                                  capacity);
  }
  detail::check_launch("store_kv");
}

namespace {

void launch_qkv_rows(float* qkv, const float* bias, int64_t n_rows, int64_t n_heads, int64_t n_kv_heads,
                     int64_t head_dim, int64_t rope_dim, const int32_t* position, int64_t first_position,
                     const int32_t* row_positions, const int32_t* cache_rows, const float* inv_freq, bool interleaved,
                     void* k_cache, void* v_cache, DType kv_type, int64_t kv_stride, int64_t capacity,
                     float cos_sin_scale, Stream stream) {
  require(kv_type == DType::F32 || kv_type == DType::F16, "qkv_rows: expected an f32 or f16 cache");
  require(head_dim > 0 && head_dim % 2 == 0, "qkv_rows: expected an even head_dim");
  require(rope_dim > 0 && rope_dim % 2 == 0 && rope_dim <= head_dim, "qkv_rows: expected an even rope_dim <= head_dim");
  require(n_heads > 0 && n_kv_heads > 0 && n_heads + 2 * n_kv_heads <= 0x7fffffff / head_dim, "qkv_rows: bad head counts");
  require(kv_stride >= n_kv_heads * head_dim, "qkv_rows: kv_stride shorter than a cache row");
  if (n_rows <= 0) return;
  require(qkv != nullptr && inv_freq != nullptr && k_cache != nullptr && v_cache != nullptr, "qkv_rows: null pointer");
  const int64_t total = n_rows * (n_heads + 2 * n_kv_heads) * (head_dim / 2);
  if (kv_type == DType::F32) {
    qkv_rows_kernel<float><<<grid_for(total), kThreads, 0, stream>>>(
        qkv, bias, n_rows, int(n_heads), int(n_kv_heads), int(head_dim), int(rope_dim / 2), position, first_position,
        inv_freq, interleaved, static_cast<float*>(k_cache), static_cast<float*>(v_cache), kv_stride, capacity,
        cos_sin_scale, row_positions, cache_rows);
  } else {
    qkv_rows_kernel<__half><<<grid_for(total), kThreads, 0, stream>>>(
        qkv, bias, n_rows, int(n_heads), int(n_kv_heads), int(head_dim), int(rope_dim / 2), position, first_position,
        inv_freq, interleaved, static_cast<__half*>(k_cache), static_cast<__half*>(v_cache), kv_stride, capacity,
        cos_sin_scale, row_positions, cache_rows);
  }
  detail::check_launch("qkv_rows");
}

}  // namespace

void qkv_rows(float* qkv, const float* bias, int64_t n_rows, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
              int64_t rope_dim, const int32_t* position, int64_t first_position, const float* inv_freq,
              bool interleaved, void* k_cache, void* v_cache, DType kv_type, int64_t kv_stride, int64_t capacity,
              float cos_sin_scale, Stream stream) {
  launch_qkv_rows(qkv, bias, n_rows, n_heads, n_kv_heads, head_dim, rope_dim, position, first_position, nullptr,
                  nullptr, inv_freq, interleaved, k_cache, v_cache, kv_type, kv_stride, capacity, cos_sin_scale,
                  stream);
}

void qkv_rows_paged(float* qkv, const float* bias, int64_t n_rows, int64_t n_heads, int64_t n_kv_heads,
                    int64_t head_dim, int64_t rope_dim, const int32_t* positions, const int32_t* cache_rows,
                    const float* inv_freq, bool interleaved, void* k_cache, void* v_cache, DType kv_type,
                    int64_t kv_stride, int64_t capacity, float cos_sin_scale, Stream stream) {
  require(n_rows <= 0 || (positions != nullptr && cache_rows != nullptr), "qkv_rows_paged: null positions or cache rows");
  launch_qkv_rows(qkv, bias, n_rows, n_heads, n_kv_heads, head_dim, rope_dim, nullptr, 0, positions, cache_rows,
                  inv_freq, interleaved, k_cache, v_cache, kv_type, kv_stride, capacity, cos_sin_scale, stream);
}

void silu_mul_rows(const float* gate_up, int64_t n_rows, int64_t n, float* out, Stream stream) {
  if (n_rows <= 0 || n <= 0) return;
  require(gate_up != nullptr && out != nullptr, "silu_mul_rows: null pointer");
  silu_mul_rows_kernel<<<grid_for(n_rows * n), kThreads, 0, stream>>>(gate_up, n_rows, n, out);
  detail::check_launch("silu_mul_rows");
}

size_t attention_scratch_floats(const AttentionShape& shape, int64_t capacity) {
  const int64_t n_splits = (capacity + kKeysPerSplit - 1) / kKeysPerSplit;
  return size_t(shape.n_heads * n_splits * (shape.head_dim + 2) + shape.n_heads);  // + a counter per head
}

void attention_decode(const float* q, const void* k_cache, const void* v_cache, DType kv_type, int64_t kv_stride,
                      const int32_t* position, int64_t capacity, const AttentionShape& shape, float* scratch,
                      float* out, Stream stream) {
  require(kv_type == DType::F32 || kv_type == DType::F16, "attention_decode: expected an f32 or f16 cache");
  require(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0,
          "attention_decode: expected n_heads a positive multiple of n_kv_heads");
  require(shape.head_dim > 0 && shape.head_dim <= 1024, "attention_decode: expected 0 < head_dim <= 1024");
  require(kv_stride >= shape.n_kv_heads * shape.head_dim, "attention_decode: kv_stride shorter than a cache row");
  require(capacity > 0, "attention_decode: expected a cache capacity > 0");
  require(q != nullptr && k_cache != nullptr && v_cache != nullptr && position != nullptr && scratch != nullptr &&
              out != nullptr,
          "attention_decode: null pointer");
  const int64_t n_splits = (capacity + kKeysPerSplit - 1) / kKeysPerSplit;
  require(n_splits <= 65535 && shape.n_heads <= 0x7fffffff, "attention_decode: capacity too large");
  float* partial = scratch;
  float* stats = scratch + shape.n_heads * n_splits * shape.head_dim;
  auto* done = reinterpret_cast<unsigned int*>(stats + shape.n_heads * n_splits * 2);  // zeroed, left zeroed
  const dim3 grid(unsigned(shape.n_heads), unsigned(n_splits));
  const size_t q_bytes = size_t(shape.head_dim) * sizeof(float);
  const bool vec = shape.head_dim % 4 == 0 && shape.head_dim <= 4 * kKeysPerSplit && kv_stride % 4 == 0;
  if (vec) {
    const int groups = kKeysPerSplit / int(shape.head_dim / 4);
    const size_t bytes = q_bytes * size_t(1 + groups);  // at most 4 KB
    if (kv_type == DType::F32) {
      attention_split_vec_kernel<float><<<grid, kKeysPerSplit, bytes, stream>>>(
          q, static_cast<const float*>(k_cache), static_cast<const float*>(v_cache), kv_stride, position, capacity,
          n_splits, shape, partial, stats, done, out);
    } else {
      attention_split_vec_kernel<__half><<<grid, kKeysPerSplit, bytes, stream>>>(
          q, static_cast<const __half*>(k_cache), static_cast<const __half*>(v_cache), kv_stride, position, capacity,
          n_splits, shape, partial, stats, done, out);
    }
  } else if (kv_type == DType::F32) {
    attention_split_kernel<float><<<grid, kAttentionThreads, q_bytes, stream>>>(
        q, static_cast<const float*>(k_cache), static_cast<const float*>(v_cache), kv_stride, position, capacity,
        n_splits, shape, partial, stats);
  } else {
    attention_split_kernel<__half><<<grid, kAttentionThreads, q_bytes, stream>>>(
        q, static_cast<const __half*>(k_cache), static_cast<const __half*>(v_cache), kv_stride, position, capacity,
        n_splits, shape, partial, stats);
  }
  detail::check_launch("attention_decode");
  if (vec) return;  // its blocks merged the splits
  attention_merge_kernel<<<unsigned(shape.n_heads), 128, 0, stream>>>(partial, stats, n_splits, shape.head_dim, out);
  detail::check_launch("attention_decode merge");
}

void argmax(const float* x, int64_t n, int32_t* index, Stream stream) {
  require(n > 0 && n <= 0x7fffffff, "argmax: expected 0 < n < 2^31");
  require(x != nullptr && index != nullptr, "argmax: null pointer");
  argmax_kernel<<<1, 1024, 0, stream>>>(x, n, index);
  detail::check_launch("argmax");
}

size_t argmax_scratch_bytes() { return sizeof(ArgmaxScratch); }

void argmax(const float* x, int64_t n, int32_t* index, void* scratch, Stream stream) {
  require(n > 0 && n <= 0x7fffffff, "argmax: expected 0 < n < 2^31");
  require(x != nullptr && index != nullptr && scratch != nullptr, "argmax: null pointer");
  const int blocks = int(std::min<int64_t>(kArgmaxBlocks, (n + 2047) / 2048));
  argmax_blocks_kernel<<<blocks, 256, 0, stream>>>(x, n, index, static_cast<ArgmaxScratch*>(scratch));
  detail::check_launch("argmax");
}

namespace detail {

bool programmatic_launch_compiled() {
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, scale_kernel) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.binaryVersion >= 90;
}

void convert_f32(const float* x, void* dst, int64_t n, bool bf16, Stream stream) {
  if (n <= 0) return;
  if (bf16) {
    convert_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, static_cast<__nv_bfloat16*>(dst), n);
  } else {
    convert_half_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, static_cast<__half*>(dst), n);
  }
  check_launch("convert_f32");
}

}  // namespace detail

}  // namespace slm::cuda
