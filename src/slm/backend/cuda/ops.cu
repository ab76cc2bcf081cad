// Element-wise operations, RMSNorm, RoPE, the KV-cache write, attention of one query token, argmax
// and the activation conversions for cuBLAS, on f32 activations.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/internal.hpp"

namespace slm::cuda {

namespace {

constexpr int kThreads = 256;

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
  SLM_GRID_LOOP(k, n) x[k] += y[k];
}

__global__ void add_bias_kernel(float* x, const float* bias, int64_t n_rows, int64_t n) {
  SLM_GRID_LOOP(k, n_rows * n) x[k] += bias[k % n];
}

__global__ void silu_mul_kernel(float* gate, const float* up, int64_t n) {
  SLM_GRID_LOOP(k, n) {
    const float g = gate[k];
    gate[k] = g / (1.0f + expf(-g)) * up[k];
  }
}

__global__ void rope_kernel(float* x, int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t half,
                            const int32_t* positions, const float* inv_freq, bool interleaved) {
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
  const int64_t pos = *position;
  if (pos < 0 || pos >= capacity) return;  // nothing outside the cache is written
  const int64_t row = pos * kv_stride;
  SLM_GRID_LOOP(i, n) {
    k_cache[row + i] = from_float<T>(k[i]);
    v_cache[row + i] = from_float<T>(v[i]);
  }
}

constexpr int kKeysPerSplit = 256;
constexpr int kAttentionThreads = 128;

// Block (head, split): scores of the keys [split * 256, ...) within [start, position], their maximum m,
// the sum l of exp(score - m) and the unnormalised sum of exp(score - m) * value, into scratch:
// partial[head][split][head_dim], then stats[head][split] = (m, l).
template <typename T>
__global__ void __launch_bounds__(kAttentionThreads) attention_split_kernel(
    const float* q, const T* k_cache, const T* v_cache, int64_t kv_stride, const int32_t* position, int64_t capacity,
    int64_t n_splits, AttentionShape shape, float* partial, float* stats) {
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

// out[head] = sum_s exp(m_s - M) partial_s / sum_s exp(m_s - M) l_s.
__global__ void attention_merge_kernel(const float* partial, const float* stats, int64_t n_splits, int64_t hd,
                                       float* out) {
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

__global__ void convert_half_kernel(const float* x, __half* dst, int64_t n) {
  SLM_GRID_LOOP(k, n) dst[k] = __float2half_rn(x[k]);
}

__global__ void convert_bf16_kernel(const float* x, __nv_bfloat16* dst, int64_t n) {
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

size_t attention_scratch_floats(const AttentionShape& shape, int64_t capacity) {
  const int64_t n_splits = (capacity + kKeysPerSplit - 1) / kKeysPerSplit;
  return size_t(shape.n_heads * n_splits * (shape.head_dim + 2));
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
  const dim3 grid(unsigned(shape.n_heads), unsigned(n_splits));
  const size_t q_bytes = size_t(shape.head_dim) * sizeof(float);
  if (kv_type == DType::F32) {
    attention_split_kernel<float><<<grid, kAttentionThreads, q_bytes, stream>>>(
        q, static_cast<const float*>(k_cache), static_cast<const float*>(v_cache), kv_stride, position, capacity,
        n_splits, shape, partial, stats);
  } else {
    attention_split_kernel<__half><<<grid, kAttentionThreads, q_bytes, stream>>>(
        q, static_cast<const __half*>(k_cache), static_cast<const __half*>(v_cache), kv_stride, position, capacity,
        n_splits, shape, partial, stats);
  }
  detail::check_launch("attention_decode");
  attention_merge_kernel<<<unsigned(shape.n_heads), 128, 0, stream>>>(partial, stats, n_splits, shape.head_dim, out);
  detail::check_launch("attention_decode merge");
}

void argmax(const float* x, int64_t n, int32_t* index, Stream stream) {
  require(n > 0 && n <= 0x7fffffff, "argmax: expected 0 < n < 2^31");
  require(x != nullptr && index != nullptr, "argmax: null pointer");
  argmax_kernel<<<1, 1024, 0, stream>>>(x, n, index);
  detail::check_launch("argmax");
}

namespace detail {

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
