// Causal attention of many query rows over the KV cache (prompt processing), flash-attention style:
// each block takes one head and 32 consecutive query rows, walks the keys in tiles of 64 held in
// shared memory, and keeps a running maximum, sum and output per row (online softmax), so the
// scores never reach device memory. f32 arithmetic on CUDA cores.
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <vector>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/grid_dependency.cuh"
#include "slm/backend/cuda/internal.hpp"

namespace slm::cuda {

namespace {

constexpr int kRowsPerBlock = 32;  // query rows
constexpr int kKeysPerTile = 64;
constexpr int kThreads = 256;       // 8 threads per query row
constexpr int kMaxHeadDim = 256;  // and no more shared memory than the device gives one block

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
// shared-memory reads free of bank conflicts. A block takes up to 32 consecutive rows of one
// sequence: without a work list, rows blockIdx.y * 32 ... of the one sequence at positions p0 + t
// over cache rows equal to positions; with one, work[blockIdx.y] names the rows, their first position
// and the sequence's block table (position p in cache row table[p / block_size] * block_size +
// p % block_size).
template <typename T, int kAcc>
__global__ void __launch_bounds__(kThreads) attention_rows_kernel(const float* q, int64_t q_stride, const T* k_cache,
                                                                  const T* v_cache, int64_t kv_stride, int64_t n_rows,
                                                                  int64_t p0, AttentionShape shape, float* out,
                                                                  int64_t out_stride, const AttentionWork* work,
                                                                  const int32_t* tables, int64_t block_size) {
  wait_for_previous_kernel();
  extern __shared__ float smem[];
  const int hd = int(shape.head_dim);
  const int padded = hd + 1;
  float* q_tile = smem;                                  // [rows][hd + 1]
  float* k_tile = q_tile + kRowsPerBlock * padded;       // [keys][hd + 1]
  float* v_tile = k_tile + kKeysPerTile * padded;        // [keys][hd]
  float* p_tile = v_tile + kKeysPerTile * hd;            // [rows][keys + 1]
  const int64_t head = blockIdx.x;
  int64_t row0, rows_here, pos0;
  const int32_t* table = nullptr;
  if (work != nullptr) {
    const AttentionWork w = work[blockIdx.y];
    row0 = w.row0;
    rows_here = w.n_rows;
    pos0 = w.position;
    table = tables + w.table;
  } else {
    row0 = int64_t(blockIdx.y) * kRowsPerBlock;
    rows_here = min(int64_t(kRowsPerBlock), n_rows - row0);
    pos0 = p0 + row0;
  }
  const int64_t kv_col = (head / (shape.n_heads / shape.n_kv_heads)) * hd;
  const int tid = int(threadIdx.x), r = tid >> 3, g = tid & 7;
  const int64_t qpos = pos0 + min(int64_t(r), rows_here - 1);
  for (int i = tid; i < kRowsPerBlock * hd; i += kThreads) {
    const int rr = i / hd, d = i - rr * hd;
    const int64_t row = row0 + min(int64_t(rr), rows_here - 1);
    q_tile[rr * padded + d] = q[row * q_stride + head * hd + d] * shape.scale;
  }
  const int64_t last_key = pos0 + rows_here - 1;  // the block's latest query position
  const int64_t first_key = shape.sliding_window > 0 ? max(int64_t(0), pos0 - shape.sliding_window + 1) : 0;
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
        const int64_t key = k0 + kk;
        const int64_t cache_row = table != nullptr ? int64_t(table[key / block_size]) * block_size + key % block_size : key;
        const int64_t offset = cache_row * kv_stride + kv_col + d;
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
  if (r < rows_here) {
    const float inv = 1.0f / l;
    const int64_t t = row0 + r;
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

// Where a launch's rows come from: one sequence over cache rows equal to positions, or a work list.
struct Paging {
  const AttentionWork* work = nullptr;
  const int32_t* tables = nullptr;
  int64_t block_size = 0;
};

template <typename T, int kAcc>
void launch_rows_acc(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, int64_t kv_stride,
                     int64_t n_rows, int64_t p0, const AttentionShape& shape, float* out, int64_t out_stride,
                     dim3 grid, size_t bytes, const Paging& paging, Stream stream) {
  detail::check(cudaFuncSetAttribute(attention_rows_kernel<T, kAcc>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(bytes)),
                "cudaFuncSetAttribute attention_rows");
  attention_rows_kernel<T, kAcc><<<grid, kThreads, bytes, stream>>>(q, q_stride, static_cast<const T*>(k_cache),
                                                                    static_cast<const T*>(v_cache), kv_stride, n_rows,
                                                                    p0, shape, out, out_stride, paging.work,
                                                                    paging.tables, paging.block_size);
}

template <typename T>
void launch_rows(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, int64_t kv_stride,
                 int64_t n_rows, int64_t p0, const AttentionShape& shape, float* out, int64_t out_stride, dim3 grid,
                 size_t bytes, const Paging& paging, Stream stream) {
  if (shape.head_dim <= 32) {
    launch_rows_acc<T, 4>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, p0, shape, out, out_stride, grid, bytes,
                          paging, stream);
  } else if (shape.head_dim <= 64) {
    launch_rows_acc<T, 8>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, p0, shape, out, out_stride, grid, bytes,
                          paging, stream);
  } else if (shape.head_dim <= 128) {
    launch_rows_acc<T, 16>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, p0, shape, out, out_stride, grid, bytes,
                           paging, stream);
  } else {  // Gemma's 256: about 169 KB of shared memory per block
    launch_rows_acc<T, 32>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, p0, shape, out, out_stride, grid, bytes,
                           paging, stream);
  }
}

}  // namespace

bool attention_rows_supported(int64_t head_dim) {
  if (head_dim <= 0 || head_dim > kMaxHeadDim) return false;
  static const int max_shared = [] {
    int device = 0, bytes = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return 48 * 1024;
    }
    return bytes;
  }();
  return shared_bytes(head_dim) <= size_t(max_shared);
}

namespace {

void check_rows_call(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, DType kv_type,
                     int64_t kv_stride, const AttentionShape& shape, const float* out, int64_t out_stride) {
  require(kv_type == DType::F32 || kv_type == DType::F16, "attention_rows: expected an f32 or f16 cache");
  require(shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0,
          "attention_rows: expected n_heads a positive multiple of n_kv_heads");
  require(attention_rows_supported(shape.head_dim),
          "attention_rows: expected 0 < head_dim <= 256 within the device's shared memory per block");
  require(kv_stride >= shape.n_kv_heads * shape.head_dim, "attention_rows: kv_stride shorter than a cache row");
  require(q_stride >= shape.n_heads * shape.head_dim && out_stride >= shape.n_heads * shape.head_dim,
          "attention_rows: q or out rows shorter than n_heads * head_dim");
  require(q != nullptr && k_cache != nullptr && v_cache != nullptr && out != nullptr, "attention_rows: null pointer");
}

void launch(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, DType kv_type,
            int64_t kv_stride, int64_t n_rows, int64_t first_position, const AttentionShape& shape, float* out,
            int64_t out_stride, int64_t n_blocks, const Paging& paging, Stream stream) {
  require(n_blocks <= 65535 && shape.n_heads <= 65535, "attention_rows: too many rows or heads for one launch");
  const size_t bytes = shared_bytes(shape.head_dim);
  const dim3 grid(unsigned(shape.n_heads), unsigned(n_blocks));
  if (kv_type == DType::F32) {
    launch_rows<float>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, first_position, shape, out, out_stride, grid,
                       bytes, paging, stream);
  } else {
    launch_rows<__half>(q, q_stride, k_cache, v_cache, kv_stride, n_rows, first_position, shape, out, out_stride, grid,
                        bytes, paging, stream);
  }
  detail::check_launch("attention_rows");
}

}  // namespace

void attention_rows(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, DType kv_type,
                    int64_t kv_stride, int64_t n_rows, int64_t first_position, int64_t capacity,
                    const AttentionShape& shape, float* out, int64_t out_stride, Stream stream) {
  require(first_position >= 0 && n_rows >= 0 && first_position + n_rows <= capacity,
          "attention_rows: expected the rows' positions within the cache");
  if (n_rows == 0) return;
  check_rows_call(q, q_stride, k_cache, v_cache, kv_type, kv_stride, shape, out, out_stride);
  launch(q, q_stride, k_cache, v_cache, kv_type, kv_stride, n_rows, first_position, shape, out, out_stride,
         (n_rows + kRowsPerBlock - 1) / kRowsPerBlock, Paging{}, stream);
}

std::vector<AttentionWork> attention_work(const std::vector<AttentionSpan>& spans) {
  std::vector<AttentionWork> work;
  for (const AttentionSpan& s : spans) {
    if (s.n_rows < 0 || s.row0 < 0 || s.position < 0 || s.table < 0 || s.row0 + s.n_rows > 0x7fffffff ||
        s.position + s.n_rows > 0x7fffffff) {
      detail::fail_argument("attention_work: expected non-negative rows, positions and table offsets below 2^31");
    }
    for (int64_t t = 0; t < s.n_rows; t += kRowsPerBlock) {
      const int64_t n = std::min<int64_t>(kRowsPerBlock, s.n_rows - t);
      work.push_back({int32_t(s.row0 + t), int32_t(n), int32_t(s.position + t), int32_t(s.table)});
    }
  }
  return work;
}

void attention_rows_paged(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, DType kv_type,
                          int64_t kv_stride, const AttentionWork* work, int64_t n_work, const int32_t* tables,
                          int64_t block_size, const AttentionShape& shape, float* out, int64_t out_stride,
                          Stream stream) {
  require(n_work >= 0 && block_size > 0, "attention_rows_paged: expected n_work >= 0 and block_size > 0");
  if (n_work == 0) return;
  check_rows_call(q, q_stride, k_cache, v_cache, kv_type, kv_stride, shape, out, out_stride);
  require(work != nullptr && tables != nullptr, "attention_rows_paged: null work list or block tables");
  launch(q, q_stride, k_cache, v_cache, kv_type, kv_stride, 0, 0, shape, out, out_stride, n_work,
         Paging{work, tables, block_size}, stream);
}

}  // namespace slm::cuda
