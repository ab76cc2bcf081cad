// Products of many tokens through cuBLAS: activations rounded to f16 (bf16 for BF16 weights), weights
// used in place (F16, BF16; F32 in full f32) or dequantized to f16 tiles of rows, f32 accumulation.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/internal.hpp"
#include "slm/util/error.hpp"

namespace slm::cuda {

namespace {

constexpr size_t kTileBytes = size_t(64) << 20;  // f16 scratch for dequantized weight rows

void check_blas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    fail(ErrorKind::internal, "cuBLAS: {} failed: {} ({})", what, cublasGetStatusString(status),
         cublasGetStatusName(status));
  }
}

void ensure(DeviceBuffer& buffer, size_t bytes) {
  if (buffer.bytes() < bytes) {
    buffer = DeviceBuffer();
    buffer = DeviceBuffer(bytes);
  }
}

}  // namespace

struct Blas::State {
  cublasHandle_t handle = nullptr;
  DeviceBuffer activations;  // x in f16 / bf16
  DeviceBuffer weights;      // dequantized rows in f16
};

Blas::Blas() : state_(std::make_unique<State>()) {
  if (!cuda_available()) fail(ErrorKind::unsupported, "CUDA: expected a CUDA device for cuBLAS, found none");
  check_blas(cublasCreate(&state_->handle), "cublasCreate");
}

Blas::~Blas() {
  if (state_ && state_->handle != nullptr) cublasDestroy(state_->handle);
}

void Blas::matmul(const DeviceMatrix& w, const float* x, int64_t n_tokens, float* y, Stream stream, bool accumulate,
                  int64_t y_stride) {
  if (n_tokens <= 0) return;
  if (x == nullptr || y == nullptr) fail(ErrorKind::invalid_argument, "CUDA: matmul: expected device arrays, found null");
  if (y_stride == 0) y_stride = w.n_out;
  if (y_stride < w.n_out) fail(ErrorKind::invalid_argument, "CUDA: matmul: expected y_stride >= {}, found {}", w.n_out, y_stride);
  if (n_tokens == 1) return cuda::matvec(w, x, y, stream, accumulate);
  if (w.data.data() == nullptr) fail(ErrorKind::invalid_argument, "CUDA: matmul: expected an uploaded matrix");
  if (w.n_out > INT32_MAX || w.n_in > INT32_MAX || n_tokens > INT32_MAX || y_stride > INT32_MAX) {
    fail(ErrorKind::out_of_range, "CUDA: matmul: expected dimensions below 2^31, found {} x {} x {}", w.n_out, w.n_in,
         n_tokens);
  }
  State& s = *state_;
  check_blas(cublasSetStream(s.handle, stream), "cublasSetStream");
  const int n = int(n_tokens), k = int(w.n_in);
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const int ldy = int(y_stride);
  // Row-major W [n_out][n_in] is column-major [n_in][n_out]: y^T (n_out x n) = W (op T) * x^T.
  if (w.type == DType::F32) {
    check_blas(cublasGemmEx(s.handle, CUBLAS_OP_T, CUBLAS_OP_N, int(w.n_out), n, k, &alpha, w.data.data(), CUDA_R_32F,
                            k, x, CUDA_R_32F, k, &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx f32");
    return;
  }
  const bool bf16 = w.type == DType::BF16;
  const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  ensure(s.activations, size_t(n_tokens * w.n_in) * 2);
  detail::convert_f32(x, s.activations.data(), n_tokens * w.n_in, bf16, stream);
  if (w.type == DType::F16 || bf16) {
    check_blas(cublasGemmEx(s.handle, CUBLAS_OP_T, CUBLAS_OP_N, int(w.n_out), n, k, &alpha, w.data.data(), type, k,
                            s.activations.data(), type, k, &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx f16");
    return;
  }
  const int64_t tile_rows = std::min<int64_t>(w.n_out, std::max<int64_t>(64, int64_t(kTileBytes / size_t(2 * w.n_in))));
  ensure(s.weights, size_t(tile_rows * w.n_in) * 2);
  for (int64_t row0 = 0; row0 < w.n_out; row0 += tile_rows) {
    const int64_t rows = std::min(tile_rows, w.n_out - row0);
    detail::dequantize_rows_f16(w, row0, rows, s.weights.data(), stream);
    check_blas(cublasGemmEx(s.handle, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), n, k, &alpha, s.weights.data(), CUDA_R_16F,
                            k, s.activations.data(), CUDA_R_16F, k, &beta, y + row0, CUDA_R_32F, ldy,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx dequantized");
  }
}

}  // namespace slm::cuda
