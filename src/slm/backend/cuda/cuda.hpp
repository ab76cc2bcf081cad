// The CUDA backend: device memory, weight matrices in device layouts, and the operations of a
// decoder forward on the GPU (f32 activations). This header needs no CUDA headers, so code built by
// the host compiler alone can use it; the library itself exists only in builds with CUDA.
//
// Pointers passed to the operations are device pointers unless a comment says otherwise. Every
// operation is queued on `stream` (nullptr: the default stream) and returns before it has run;
// launch errors are reported at once as slm::Error, execution errors at the next synchronize().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slm/format/dtype.hpp"

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace slm::cuda {

using Stream = CUstream_st*;

// True when a CUDA device can be used (driver present, at least one device). Never throws.
bool cuda_available();

struct DeviceInfo {
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  size_t global_memory = 0;  // bytes
  size_t l2_bytes = 0;
};
// The current device; Error(unsupported) when there is none.
DeviceInfo device_info();

// Waits for all queued work of the device and reports any error it hit.
void synchronize();

// Device memory, owned (move-only).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);  // Error(out_of_range) when the device has not enough memory
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  // Synchronous copies between host memory and [offset, offset + bytes) of this buffer.
  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;
  void fill_bytes(int value);  // synchronous

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A weight matrix of n_out rows of n_in elements in its device layout. F32, F16 and BF16 rows are
// stored as in GGUF; block formats are split into planes so that every thread reads aligned 16-byte
// pieces (nb = n_in / 256; the same bytes as GGUF, except Q4_K: 148 per super-block instead of 144,
// Q5_K: 180 instead of 176, IQ4_XS: 138 instead of 136):
//   Q8_0: q  int8 [n_out][n_in]        | d f16 [n_out][n_in / 32]
//   Q4_0: qs u8   [n_out][n_in / 2]    | d f16 [n_out][n_in / 32]   (each block's 16 bytes as in GGUF)
//   Q4_K: qs u8   [n_out][nb][128]     | u8 [n_out][nb][16]: the 8 six-bit scales, then the 8 minimums,
//         unpacked | (d, dmin) f16 [n_out][nb][2]
//   Q6_K: ql, qh u8 [n_out][nb][192]   | scales i8 [n_out][nb][16] | d f16 [n_out][nb]
//   Q5_0: qs u8   [n_out][n_in / 2]    | qh u32 [n_out][n_in / 32] | d f16 [n_out][n_in / 32]
//   Q5_1: as Q5_0 with (d, m) f16 [n_out][n_in / 32][2];  IQ4_NL: as Q4_0
//   Q5_K: qs, qh u8 [n_out][nb][128 + 32] | scales and minimums as Q4_K | (d, dmin) f16 [n_out][nb][2]
//   IQ4_XS: qs u8 [n_out][nb][128]     | sub-block scales minus 32, i8 [n_out][nb][8] | d f16 [n_out][nb]
struct DeviceMatrix {
  DType type = DType::F32;
  int64_t n_out = 0;
  int64_t n_in = 0;
  DeviceBuffer data;
  size_t plane1 = 0;  // byte offsets of the second and third planes (0 when unused)
  size_t plane2 = 0;
};

// Types upload_matrix accepts: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, IQ4_NL, Q4_K, Q5_K, Q6_K, IQ4_XS.
bool matrix_type_supported(DType type);
// Device bytes of a matrix of `type` whose GGUF rows take gguf_bytes.
size_t device_matrix_bytes(DType type, size_t gguf_bytes);
// Copies host rows (GGUF layout, n_out rows of n_in elements of `type`) to the device layout.
// Errors: unsupported type, n_in not a multiple of the block size (and of 8 for F16/BF16, 4 for F32).
DeviceMatrix upload_matrix(DType type, const void* host_rows, int64_t n_out, int64_t n_in);

// y[o] = sum_i w[o][i] * x[i]: the product of one token (decode). x: f32 [n_in], y: f32 [n_out].
// accumulate: y[o] += the product instead (a residual connection without another pass).
void matvec(const DeviceMatrix& w, const float* x, float* y, Stream stream = nullptr, bool accumulate = false);
// The same product of rms_norm(x) * weight (x and weight: f32 [n_in]; F32, F16 and BF16 weights),
// every block computing the norm itself (one launch for the norm and the product).
void matvec_rms_norm(const DeviceMatrix& w, const float* x, const float* weight, float eps, float* y,
                     Stream stream = nullptr, bool accumulate = false);
// The same product of x[i] = silu(gate[i]) * up[i], computed as the kernel reads it (one launch for
// the MLP's activation and down projection).
void matvec_silu_mul(const DeviceMatrix& w, const float* gate, const float* up, float* y, Stream stream = nullptr,
                     bool accumulate = false);

// Activations rounded to 8 bits per block of 32 (scale max|x| / 127), for the integer kernels of the
// block formats: per block its scale, and per 16 elements the sum of the unrounded values.
// Layout: q int8 [n] | d f32 [n / 32] | sums f32 [n / 16].
class QuantizedVector {
 public:
  QuantizedVector() = default;
  explicit QuantizedVector(int64_t capacity);  // allocate ahead (outside graph capture)
  int64_t size() const { return n_; }
  int64_t capacity() const { return capacity_; }
  const void* data() const { return buffer_.data(); }
  // Rounds x (device f32 [n], n a multiple of 32) into this vector; allocates when n > capacity().
  void quantize(const float* x, int64_t n, Stream stream = nullptr);
  // The same of rms_norm(x) * weight (one block; y, optional, receives the f32 values).
  void quantize_rms_norm(const float* x, const float* weight, int64_t n, float eps, float* y = nullptr,
                         Stream stream = nullptr);
  // The same of silu(gate) * up, without writing the product.
  void quantize_silu_mul(const float* gate, const float* up, int64_t n, Stream stream = nullptr);

 private:
  DeviceBuffer buffer_;
  int64_t n_ = 0;
  int64_t capacity_ = 0;
  void reserve(int64_t n);  // checks n and allocates when n > capacity()
};

// The product with activations rounded to 8 bits (x.size() == w.n_in), through integer dot products:
// every block format upload_matrix accepts; the error per output is at most
// sum over blocks b of max|x_b| / 254 * sum_{i in b} |w_i| beyond f32 rounding.
void matvec(const DeviceMatrix& w, const QuantizedVector& x, float* y, Stream stream = nullptr,
            bool accumulate = false);
// True when matvec(w, QuantizedVector, ...) handles w's type.
bool matvec_quantized_supported(DType type);

// out[t] = row ids[t] of `table` in f32 (embedding look-up). ids: device int32 [n_ids], each in
// [0, n_out) (ids outside give rows of zeros); out: f32 [n_ids][n_in].
void embedding(const DeviceMatrix& table, const int32_t* ids, int64_t n_ids, float* out, Stream stream = nullptr);

// Products of many tokens (prompt processing) through cuBLAS: owns the cuBLAS handle and scratch
// memory (activations in f16/bf16, quantized weights dequantized to f16 tiles). Not thread-safe.
class Blas {
 public:
  Blas();
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // y[t][o] = sum_i w[o][i] * x[t][i]; x: f32 [n_tokens][n_in], y: f32 rows of y_stride (0: n_out)
  // values, of which the first n_out are written; accumulate: y += the product. One token goes to
  // matvec. The tensor cores multiply f16 (bf16 for BF16 weights) operands with f32 accumulation: x
  // is rounded to that type; F32 weights are multiplied in full f32.
  void matmul(const DeviceMatrix& w, const float* x, int64_t n_tokens, float* y, Stream stream = nullptr,
              bool accumulate = false, int64_t y_stride = 0);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, n_rows rows of n values (y may be x).
void rms_norm(const float* x, const float* weight, float* y, int64_t n_rows, int64_t n, float eps,
              Stream stream = nullptr);
// Per-head RMSNorm in place (Qwen3's q and k norms): in each of n_rows rows (row_stride floats
// apart), the first n_q_heads heads of head_dim values by q_weight [head_dim], the next n_k_heads
// by k_weight [head_dim].
void head_rms_norm(float* x, int64_t n_rows, int64_t row_stride, int64_t n_q_heads, int64_t n_k_heads,
                   int64_t head_dim, const float* q_weight, const float* k_weight, float eps, Stream stream = nullptr);
// x[i] += y[i]
void add(float* x, const float* y, int64_t n, Stream stream = nullptr);
// x[t][i] += bias[i]
void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n, Stream stream = nullptr);
// gate[i] = silu(gate[i]) * up[i]
void silu_mul(float* gate, const float* up, int64_t n, Stream stream = nullptr);
// gate[i] = gelu_tanh(gate[i]) * up[i] (Gemma's gate: the tanh approximation of GELU)
void gelu_tanh_mul(float* gate, const float* up, int64_t n, Stream stream = nullptr);
// x[i] *= s
void scale(float* x, float s, int64_t n, Stream stream = nullptr);
// Rotary embedding in place, as slm::cpu::rope: n_rows rows of n_heads heads of head_dim values,
// row t at positions[t] (device int32); inv_freq: device f32 [rope_dim / 2]. interleaved rotates the
// pairs (2i, 2i+1), neox the pairs (i, i + rope_dim / 2). Angles in double precision.
void rope(float* x, int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const int32_t* positions,
          const float* inv_freq, bool interleaved, Stream stream = nullptr);

struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t sliding_window = 0;  // 0: none; else keys with (position - key position) >= window are masked
  float scale = 0.0f;          // usually 1 / sqrt(head_dim)
};

// Writes one token's keys and values (f32 [n], n = n_kv_heads * head_dim) into row *position (device
// int32) of caches of `capacity` rows, kv_stride elements of kv_type (F32 or F16) apart. A position
// outside [0, capacity) writes nothing.
void store_kv(const float* k, const float* v, void* k_cache, void* v_cache, DType kv_type, int64_t kv_stride,
              int64_t n, const int32_t* position, int64_t capacity, Stream stream = nullptr);

// The q/k/v rows of a step in place: n_rows rows of [q heads | k heads | v heads] (head_dim values
// each), row t at position first_position + t (+ *position when `position`, a device int32, is not
// null): adds `bias` (optional, [q_dim + 2 kv_dim]), rotates q and k heads as rope() does (cos and sin
// times cos_sin_scale: LongRoPE's attention factor), and writes
// k and v of each row into that cache row (rows outside [0, capacity) are not written). One launch
// for what bias, rope and store_kv do apart.
void qkv_rows(float* qkv, const float* bias, int64_t n_rows, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
              int64_t rope_dim, const int32_t* position, int64_t first_position, const float* inv_freq,
              bool interleaved, void* k_cache, void* v_cache, DType kv_type, int64_t kv_stride, int64_t capacity,
              float cos_sin_scale = 1.0f, Stream stream = nullptr);
// The same for rows of several sequences: row t at positions[t], its keys and values into cache row
// cache_rows[t] (both device int32 [n_rows]; rows outside [0, capacity) are not written).
void qkv_rows_paged(float* qkv, const float* bias, int64_t n_rows, int64_t n_heads, int64_t n_kv_heads,
                    int64_t head_dim, int64_t rope_dim, const int32_t* positions, const int32_t* cache_rows,
                    const float* inv_freq, bool interleaved, void* k_cache, void* v_cache, DType kv_type,
                    int64_t kv_stride, int64_t capacity, float cos_sin_scale, Stream stream = nullptr);

// out[t][i] = silu(gate_up[t][i]) * gate_up[t][n + i]: rows of [gate | up] (2n values) to rows of n.
void silu_mul_rows(const float* gate_up, int64_t n_rows, int64_t n, float* out, Stream stream = nullptr);
// The same with gelu_tanh for the gate.
void gelu_tanh_mul_rows(const float* gate_up, int64_t n_rows, int64_t n, float* out, Stream stream = nullptr);

// True when attention_rows handles heads of head_dim values (at most 128).
bool attention_rows_supported(int64_t head_dim);
// Causal attention of n_rows query rows at positions first_position + t over the cache rows
// [start, first_position + t] (start from the sliding window), whose keys and values must already
// be in the cache; grouped-query heads as in attention_decode. q: f32 rows q_stride apart (head h at
// h * head_dim), out: f32 rows out_stride apart. Online softmax over tiles of keys (flash-attention
// style): no score matrix in device memory.
void attention_rows(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, DType kv_type,
                    int64_t kv_stride, int64_t n_rows, int64_t first_position, int64_t capacity,
                    const AttentionShape& shape, float* out, int64_t out_stride, Stream stream = nullptr);

// Paged attention for a batch of several sequences. A span: n_rows consecutive query rows from row0,
// at positions position .. position + n_rows - 1 of one sequence whose block table starts at
// tables[table] (position p of the sequence is cache row tables[table + p / block_size] * block_size
// + p % block_size). attention_work cuts spans into the kernel's work items (32 rows each; the host
// list goes to the device as it is); attention_rows_paged runs them all in one launch. The tables
// must cover every position up to each span's last.
struct AttentionSpan {
  int64_t row0 = 0;
  int64_t n_rows = 0;
  int64_t position = 0;
  int64_t table = 0;
};
struct AttentionWork {
  int32_t row0;
  int32_t n_rows;
  int32_t position;
  int32_t table;
};
std::vector<AttentionWork> attention_work(const std::vector<AttentionSpan>& spans);
void attention_rows_paged(const float* q, int64_t q_stride, const void* k_cache, const void* v_cache, DType kv_type,
                          int64_t kv_stride, const AttentionWork* work, int64_t n_work, const int32_t* tables,
                          int64_t block_size, const AttentionShape& shape, float* out, int64_t out_stride,
                          Stream stream = nullptr);

// Scratch floats attention_decode needs for caches of `capacity` rows; the scratch must be zeroed
// once before its first use (each call leaves its counters zeroed again).
size_t attention_scratch_floats(const AttentionShape& shape, int64_t capacity);

// Attention of one query token at *position (device int32, < capacity) over cache rows
// [start, position] (start from the sliding window), grouped-query heads (head h reads kv head
// h / (n_heads / n_kv_heads)). q, out: f32 [n_heads * head_dim]; caches as for store_kv. The keys
// are split into chunks processed in parallel and merged (positions beyond *position cost nothing
// but a launch), so the launch shape depends only on capacity: suitable for graph capture. A position
// outside [0, capacity) reads nothing and gives NaN outputs.
void attention_decode(const float* q, const void* k_cache, const void* v_cache, DType kv_type, int64_t kv_stride,
                      const int32_t* position, int64_t capacity, const AttentionShape& shape, float* scratch,
                      float* out, Stream stream = nullptr);

// *index = the smallest i with x[i] == max(x) (NaNs are ignored); index: device int32.
void argmax(const float* x, int64_t n, int32_t* index, Stream stream = nullptr);
// The same with many blocks: scratch is device memory of argmax_scratch_bytes(), zeroed once before
// its first use (each call leaves it zeroed); one call at a time per scratch.
size_t argmax_scratch_bytes();
void argmax(const float* x, int64_t n, int32_t* index, void* scratch, Stream stream = nullptr);

// For each of `rows` rows of logits (device, [rows][vocab]): lse[row] = log(sum(exp(row))) and its k
// largest logits, largest first (equal logits: the lower id first; NaN never taken), in
// values/ids[row * k ...] (id -1 past the end when a row has fewer than k numbers). k: 1 to 64;
// vocabularies up to 512k. scratch: device memory of top_logits_scratch_bytes(rows, vocab, k).
constexpr int kTopLogitsMaxK = 64;
size_t top_logits_scratch_bytes(int64_t rows, int64_t vocab, int k);
int64_t top_logits_max_vocab();
void top_logits(const float* logits, int64_t rows, int64_t vocab, int k, float* lse, int32_t* ids, float* values,
                void* scratch, Stream stream = nullptr);

}  // namespace slm::cuda
