// Helpers of the CUDA tests: skipping without a device, random inputs, copies to and from the device.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "slm/backend/cuda/cuda.hpp"

#define SLM_REQUIRE_CUDA()                                                     \
  do {                                                                         \
    if (!slm::cuda::cuda_available()) GTEST_SKIP() << "no CUDA device found"; \
  } while (0)

namespace slm::cuda::test {

// Uniform in [lo, hi), never all zeros (a zero draw is replaced by lo / 2).
inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = dist(rng);
    if (x == 0.0f) x = lo / 2;
  }
  return v;
}

template <typename T>
DeviceBuffer to_device(const std::vector<T>& host) {
  DeviceBuffer buffer(host.size() * sizeof(T));
  buffer.upload(host.data(), host.size() * sizeof(T));
  return buffer;
}

// A device buffer of n values of T whose bytes are all 0xff (NaN for floats): outputs that a kernel
// fails to write stay visible.
template <typename T>
DeviceBuffer poisoned(size_t n) {
  DeviceBuffer buffer(n * sizeof(T));
  buffer.fill_bytes(0xff);
  return buffer;
}

template <typename T>
std::vector<T> to_host(const DeviceBuffer& buffer, size_t n) {
  synchronize();
  std::vector<T> host(n);
  buffer.download(host.data(), n * sizeof(T));
  return host;
}

// ||a - b|| / ||b||
inline double relative_l2(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace slm::cuda::test
