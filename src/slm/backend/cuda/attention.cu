// Causal attention of many query rows over the KV cache (prompt processing), flash-attention style:
// each block takes one head and 32 consecutive query rows, walks the keys in tiles of 64 held in
// shared memory, and keeps a running maximum, sum and output per row (online softmax), so the
// scores never reach device memory. f32 arithmetic on CUDA cores.
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/internal.hpp"

namespace slm::cuda {

namespace {

constexpr int kRowsPerBlock = 32;  // query rows
constexpr int kKeysPerTile = 64;
constexpr int kThreads = 256;       // 8 threads per query row
constexpr int kMaxHeadDim = 128;

template <typename T>
__device__ __forceinline__ float load_float(const T* p) {
  if constexpr (sizeof(T) == 2) {
    return __half2float(*p);
  } else {
    return *p;
  }
}

__device__ __forceinline__ float group8_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
}

__device__ __forceinline__ float group8_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v + __shfl_xor_sync(0xffffffffu, v, 4);
}

size_t shared_bytes(int64_t hd) {
  return size_t(kRowsPerBlock * (hd + 1) + kKeysPerTile * (hd + 1) + kKeysPerTile * hd +
                kRowsPerBlock * (kKeysPerTile + 1)) *
         sizeof(float);
}

// Thread (row r = tid / 8, lane g = tid % 8) computes the scores of its row against keys g, g + 8, ...
// of a tile and owns the output dimensions g, g + 8, ... of its row. Padded strides keep the
// shared-memory reads free of bank conflicts.
template <typename T, int kAcc>
__global__ void __launch_bounds__(kThreads) attention_rows_kernel(const float* q, int64_t q_stride, const T* k_cache,
                                                                  const T* v_cache, int64_t kv_stride, int64_t n_rows,
                                                                  int64_t p0, AttentionShape shape, float* out,
                                                                  int64_t out_stride) {
  extern __shared__ float smem[];
  const int hd = int(shape.head_dim);
  const int padded = hd + 1;
  float* q_tile = smem;                                  // [rows][hd + 1]
  float* k_tile = q_tile + kRowsPerBlock * padded;       // [keys][hd + 1]
  float* v_tile = k_tile + kKeysPerTile * padded;        // [keys][hd]
  float* p_tile = v_tile + kKeysPerTile * hd;            // [rows][keys + 1]
  const int64_t head = blockIdx.x;
  const int64_t t0 = int64_t(blockIdx.y) * kRowsPerBlock;
  const int64_t kv_col = (head / (shape.n_heads / shape.n_kv_heads)) * hd;
  const int tid = int(threadIdx.x), r = tid >> 3, g = tid & 7;
  const int64_t t = t0 + r;
  const int64_t rows_here = min(int64_t(kRowsPerBlock), n_rows - t0);
  const int64_t qpos = p0 + min(t, n_rows - 1);
  for (int i = tid; i < kRowsPerBlock * hd; i += kThreads) {
    const int rr = i / hd, d = i - rr * hd;
    const int64_t row = min(t0 + rr, n_rows - 1);
    q_tile[rr * padded + d] = q[row * q_stride + head * hd + d] * shape.scale;
  }
  const int64_t last_key = p0 + t0 + rows_here - 1;  // the block's latest query position
  const int64_t first_key = shape.sliding_window > 0 ? max(int64_t(0), p0 + t0 - shape.sliding_window + 1) : 0;
  float m = -INFINITY, l = 0.0f;
  float acc[kAcc];  // head_dim <= 8 * kAcc
#pragma unroll
  for (int i = 0; i < kAcc; ++i) acc[i] = 0.0f;
  for (int64_t k0 = first_key; k0 <= last_key; k0 += kKeysPerTile) {
    const int n_keys = int(min(int64_t(kKeysPerTile), last_key - k0 + 1));
    __syncthreads();  // the previous tile is no longer read
    for (int i = tid; i < kKeysPerTile * hd; i += kThreads) {
      const int kk = i / hd, d = i - kk * hd;
      float kv = 0.0f, vv = 0.0f;
      if (kk < n_keys) {
        const int64_t offset = (k0 + kk) * kv_stride + kv_col + d;
        kv = load_float(k_cache + offset);
        vv = load_float(v_cache + offset);
      }
      k_tile[kk * padded + d] = kv;
      v_tile[kk * hd + d] = vv;
    }
    __syncthreads();
    float s[kKeysPerTile / 8];
#pragma unroll
    for (int j = 0; j < kKeysPerTile / 8; ++j) s[j] = 0.0f;
    for (int d = 0; d < hd; ++d) {
      const float qv = q_tile[r * padded + d];
#pragma unroll
      for (int j = 0; j < kKeysPerTile / 8; ++j) s[j] = fmaf(qv, k_tile[(g + 8 * j) * padded + d], s[j]);
    }
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kKeysPerTile / 8; ++j) {
      const int64_t key = k0 + g + 8 * j;
      const bool visible = g + 8 * j < n_keys && key <= qpos &&
                           (shape.sliding_window <= 0 || qpos - key < shape.sliding_window);
      s[j] = visible ? s[j] : -INFINITY;
      tile_max = fmaxf(tile_max, s[j]);
    }
    tile_max = group8_max(tile_max);
    const float m_new = fmaxf(m, tile_max);
    float alpha = 1.0f, row_sum = 0.0f;
    if (m_new != -INFINITY) alpha = expf(m - m_new);  // m = -inf gives 0: nothing accumulated yet
#pragma unroll
    for (int j = 0; j < kKeysPerTile / 8; ++j) {
      const float p = s[j] == -INFINITY ? 0.0f : expf(s[j] - m_new);
      p_tile[r * (kKeysPerTile + 1) + g + 8 * j] = p;
      row_sum += p;
    }
    row_sum = group8_sum(row_sum);
    l = l * alpha + row_sum;
    m = m_new;
#pragma unroll
    for (int i = 0; i < kAcc; ++i) acc[i] *= alpha;
    __syncwarp();  // a row's probabilities come from the 8 lanes of its own warp
    for (int j = 0; j < n_keys; ++j) {
      const float p = p_tile[r * (kKeysPerTile + 1) + j];
      const float* v_row = v_tile + j * hd;
#pragma unroll
      for (int i = 0; i < kAcc; ++i) {
        const int d = g + 8 * i;
        if (d < hd) acc[i] = fmaf(p, v_row[d], acc[i]);
      }
    }
    __syncwarp();
  }
  if (t < n_rows) {
    const float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < kAcc; ++i) {
      const int d = g + 8 * i;
      if (d < hd) out[t * out_stride + head * hd + d] = acc[i] * inv;
    }
  }
}

void require(bool ok, const char* message) {
  if (!ok) detail::fail_argument(message);
}

template <typename T, int kAcc>
void launch_rows_acc(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, int64_t kv_stride,
                     int64_t n_rows, int64_t p0, const AttentionShape& shape, float* out, int64_t out_stride,
                     dim3 grid, size_t bytes, Stream stream) {
  detail::check(cudaFuncSetAttribute(attention_rows_kernel<T, kAcc>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(bytes)),
                "cudaFuncSetAttribute attention_rows");
  attention_rows_kernel<T, kAcc><<<grid, kThreads, bytes, stream>>>(q, q_stride, static_cast<const T*>(k_cache),
                                                                    static_cast<const T*>(v_cache), kv_stride, n_rows,
                                                                    p0, shape, out, out_stride);
}

template <typename T>
void launch_rows(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, int64_t kv_stride,
                 int64_t n_rows, int64_t p0, const AttentionShape& shape, float* out, int64_t out_stride, dim3 grid,
                 size_t bytes, Stream stream) {
  if (shape.head_dim <= 32) {
    launch_rows_acc<T, 4>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, p0, shape, out, out_stride, grid, bytes,
                          stream);
  } else if (shape.head_dim <= 64) {
    launch_rows_acc<T, 8>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, p0, shape, out, out_stride, grid, bytes,
                          stream);
  } else {
    launch_rows_acc<T, 16>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, p0, shape, out, out_stride, grid, bytes,
                           stream);
  }
}

}  // namespace

bool attention_rows_supported(int64_t head_dim) { return head_dim > 0 && head_dim <= kMaxHeadDim; }

void attention_rows(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, DType kv_type,
                    int64_t kv_stride, int64_t n_rows, int64_t first_position, int64_t capacity,
                    const AttentionShape& shape, float* out, int64_t out_stride, Stream stream) {
  require(kv_type == DType::F32 || kv_type == DType::F16, "attention_rows: expected an f32 or f16 cache");
  require(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0,
          "attention_rows: expected n_heads a positive multiple of n_kv_heads");
  require(attention_rows_supported(shape.head_dim), "attention_rows: expected 0 < head_dim <= 128");
  require(kv_stride >= shape.n_kv_heads * shape.head_dim, "attention_rows: kv_stride shorter than a cache row");
  require(q_stride >= shape.n_heads * shape.head_dim && out_stride >= shape.n_heads * shape.head_dim,
          "attention_rows: q or out rows shorter than n_heads * head_dim");
  require(first_position >= 0 && n_rows >= 0 && first_position + n_rows <= capacity,
          "attention_rows: expected the rows' positions within the cache");
  if (n_rows == 0) return;
  require(q != nullptr && k_cache != nullptr && v_cache != nullptr && out != nullptr, "attention_rows: null pointer");
  const int64_t blocks = (n_rows + kRowsPerBlock - 1) / kRowsPerBlock;
  require(blocks <= 65535 && shape.n_heads <= 65535, "attention_rows: too many rows or heads for one launch");
  const size_t bytes = shared_bytes(shape.head_dim);
  const dim3 grid(unsigned(shape.n_heads), unsigned(blocks));
  if (kv_type == DType::F32) {
    launch_rows<float>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, first_position, shape, out, out_stride, grid,
                       bytes, stream);
  } else {
    launch_rows<__half>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, first_position, shape, out, out_stride, grid,
                        bytes, stream);
  }
  detail::check_launch("attention_rows");
}

}  // namespace slm::cuda
