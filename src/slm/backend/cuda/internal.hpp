// Pieces of the CUDA backend shared by its .cu files (built by nvcc) and its .cpp files (built by
// the host compiler): error reporting and the launchers that host-only files call. No CUDA types.
#pragma once

#include <cstdint>
#include <string>

#include "slm/backend/cuda/cuda.hpp"

namespace slm::cuda::detail {

// Throws slm::Error(internal) naming `what` and the CUDA error string when code != 0 (cudaSuccess).
void check(int code, const char* what);
// check() on cudaGetLastError(): call after each kernel launch.
void check_launch(const char* what);
// Throws slm::Error(invalid_argument) / (unsupported) with this message.
[[noreturn]] void fail_argument(const std::string& message);
[[noreturn]] void fail_unsupported(const std::string& message);

// True when the kernels running on the current device were compiled for compute capability 9.0 or
// newer, i.e. contain wait_for_previous_kernel()'s wait (an sm_80 build run on a Hopper device does not).
bool programmatic_launch_compiled();
// dst (f16, or bf16 when `bf16`) = x rounded, n values.
void convert_f32(const float* x, void* dst, int64_t n, bool bf16, Stream stream);
// dst f16 [rows][n_in] = rows [row0, row0 + rows) of w, dequantized (any upload_matrix type).
void dequantize_rows_f16(const DeviceMatrix& w, int64_t row0, int64_t rows, void* dst, Stream stream);

}  // namespace slm::cuda::detail
