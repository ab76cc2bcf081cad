// Device detection, device memory and error reporting of the CUDA backend.
#include <cuda_runtime.h>

#include <utility>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/internal.hpp"
#include "slm/util/error.hpp"

namespace slm::cuda {

namespace detail {

void check(int code, const char* what) {
  if (code == cudaSuccess) return;
  const auto error = static_cast<cudaError_t>(code);
  fail(ErrorKind::internal, "CUDA: {} failed: {} ({})", what, cudaGetErrorString(error), cudaGetErrorName(error));
}

void check_launch(const char* what) { check(cudaGetLastError(), what); }

void fail_argument(const std::string& message) { fail(ErrorKind::invalid_argument, "CUDA: {}", message); }

void fail_unsupported(const std::string& message) { fail(ErrorKind::unsupported, "CUDA: {}", message); }

}  // namespace detail

bool cuda_available() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the error so that later calls start clean
    return false;
  }
  return count > 0;
}

DeviceInfo device_info() {
  if (!cuda_available()) fail(ErrorKind::unsupported, "CUDA: expected a CUDA device, found none");
  int device = 0;
  detail::check(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp prop{};
  detail::check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  DeviceInfo info;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.global_memory = prop.totalGlobalMem;
  info.l2_bytes = size_t(prop.l2CacheSize);
  return info;
}

void synchronize() { detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t status = cudaMalloc(&ptr_, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    ptr_ = nullptr;
    bytes_ = 0;
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    fail(ErrorKind::out_of_range, "CUDA: expected {} bytes of free device memory, found {} of {} free ({})", bytes,
         free_bytes, total, cudaGetErrorString(status));
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

namespace {

void check_range(size_t offset, size_t bytes, size_t size, const char* what) {
  if (offset > size || bytes > size - offset) {
    fail(ErrorKind::out_of_range, "CUDA: {} of {} bytes at offset {}: expected at most {} bytes in the buffer", what,
         bytes, offset, size);
  }
}

}  // namespace

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  check_range(offset, bytes, bytes_, "upload");
  if (bytes == 0) return;
  detail::check(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy upload");
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  check_range(offset, bytes, bytes_, "download");
  if (bytes == 0) return;
  detail::check(cudaMemcpy(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost),
                "cudaMemcpy download");
}

void DeviceBuffer::fill_bytes(int value) {
  if (bytes_ == 0) return;
  detail::check(cudaMemset(ptr_, value, bytes_), "cudaMemset");
  detail::check(cudaDeviceSynchronize(), "cudaMemset");
}

}  // namespace slm::cuda
