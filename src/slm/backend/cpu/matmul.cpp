// Argument checks, run-time choice of the instruction-set path, scratch memory, and the read
// bandwidth measurement. The kernels themselves live in matmul_scalar.cpp, matmul_avx2.cpp and
// matmul_avx512.cpp.
#include "slm/backend/cpu/matmul.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "slm/backend/cpu/matmul_kernels.hpp"
#include "slm/backend/cpu/matmul_quant.hpp"
#include "slm/util/error.hpp"

namespace slm::cpu {
namespace {

using kernels::WeightType;

bool has_avx2_path() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool has_avx512_path() {
  return has_avx2_path() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

Isa detect_isa_uncached() {
  __builtin_cpu_init();
  if (has_avx512_path()) return Isa::avx512;
  if (has_avx2_path()) return Isa::avx2;
  return Isa::scalar;
}

void require_isa(Isa isa) {
  if (isa != Isa::scalar && isa != Isa::avx2 && isa != Isa::avx512) {
    fail(ErrorKind::invalid_argument, "expected an instruction-set path (scalar, avx2, avx512), found number {}",
         int(isa));
  }
  if (int(isa) > int(detect_isa())) {
    fail(ErrorKind::unsupported, "expected an instruction-set path this CPU runs (up to {}), found {}",
         isa_name(detect_isa()), isa_name(isa));
  }
}

WeightType weight_type(DType type, const char* what) {
  switch (type) {
    case DType::F32:
      return WeightType::f32;
    case DType::F16:
      return WeightType::f16;
    case DType::BF16:
      return WeightType::bf16;
    default:
      break;
  }
  const auto traits = dtype_traits(uint32_t(type));
  fail(ErrorKind::unsupported, "{}: expected a weight type of f32, f16 or bf16, found {}", what,
       traits ? std::string(traits->name) : fmt::format("type number {}", uint32_t(type)));
}

// Grow-only, 64-byte aligned scratch memory, one per calling thread.
class Scratch {
 public:
  float* get(size_t floats) {
    if (floats > capacity_) {
      const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      void* memory = std::aligned_alloc(64, bytes);
      if (memory == nullptr) fail(ErrorKind::out_of_range, "expected {} bytes of scratch memory, allocation failed", bytes);
      data_.reset(static_cast<float*>(memory));
      capacity_ = floats;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace

Isa detect_isa() {
  static const Isa isa = detect_isa_uncached();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

bool matmul_check_args(const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens, float* y) {
  if (n_out < 0 || n_in < 0 || n_tokens < 0) {
    fail(ErrorKind::invalid_argument, "matmul: expected sizes >= 0, found n_out {}, n_in {}, n_tokens {}", n_out,
         n_in, n_tokens);
  }
  if (n_out == 0 || n_tokens == 0) return false;
  if (y == nullptr) fail(ErrorKind::invalid_argument, "matmul: expected an output buffer, found null");
  if (n_in == 0) {
    std::fill(y, y + n_out * n_tokens, 0.0f);
    return false;
  }
  if (w == nullptr || x == nullptr) {
    fail(ErrorKind::invalid_argument, "matmul: expected weights and activations, found null {}",
         w == nullptr ? "weights" : "activations");
  }
  return true;
}

void matmul_isa(Isa isa, DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x,
                int64_t n_tokens, float* y) {
  require_isa(isa);
  if (is_block_quantized(w_type)) {  // block formats: matmul_quant.cpp (integer kernels per instruction set)
    if (isa == Isa::avx512) {
      matmul_quant(w_type, w, n_out, n_in, x, n_tokens, y);
    } else if (isa == Isa::avx2 && quant_path_handles(QuantPath::avx2, w_type)) {
      matmul_quant_path(QuantPath::avx2, w_type, w, n_out, n_in, x, n_tokens, y);
    } else {
      matmul_quant_ref(w_type, w, n_out, n_in, x, n_tokens, y);
    }
    return;
  }
  const WeightType type = weight_type(w_type, "matmul");
  if (!matmul_check_args(w, n_out, n_in, x, n_tokens, y)) return;

  thread_local Scratch scratch;
  kernels::MatmulTask task{type, w, n_out, n_in, x, n_tokens, y, nullptr, std::max(1, omp_get_max_threads())};
  switch (isa) {
    case Isa::avx512:
      task.scratch = scratch.get(kernels::scratch_floats_avx512(n_out, n_in, n_tokens, task.n_threads));
      kernels::matmul_avx512(task);
      break;
    case Isa::avx2:
      task.scratch = scratch.get(kernels::scratch_floats_avx2(n_out, n_in, n_tokens, task.n_threads));
      kernels::matmul_avx2(task);
      break;
    case Isa::scalar:
      task.scratch = scratch.get(kernels::scratch_floats_scalar(n_out, n_in, n_tokens, task.n_threads));
      kernels::matmul_scalar(task);
      break;
  }
}

void matmul(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens, float* y) {
  matmul_isa(detect_isa(), w_type, w, n_out, n_in, x, n_tokens, y);
}

void to_f32(DType type, const void* src, float* dst, int64_t n) {
  if (is_block_quantized(type)) {  // block formats: decoded by the format layer
    dequantize_row(type, src, dst, n);
    return;
  }
  const WeightType t = weight_type(type, "to_f32");
  if (n < 0) fail(ErrorKind::invalid_argument, "to_f32: expected a count >= 0, found {}", n);
  if (n == 0) return;
  if (src == nullptr || dst == nullptr) fail(ErrorKind::invalid_argument, "to_f32: expected buffers, found null");
  switch (detect_isa()) {
    case Isa::avx512:
      kernels::to_f32_avx512(t, src, dst, n);
      break;
    case Isa::avx2:
      kernels::to_f32_avx2(t, src, dst, n);
      break;
    case Isa::scalar:
      kernels::to_f32_scalar(t, src, dst, n);
      break;
  }
}

double measure_read_bandwidth(size_t bytes, int repeats) {
  if (bytes < 4096 || repeats < 1) {
    fail(ErrorKind::invalid_argument, "measure_read_bandwidth: expected >= 4096 bytes and >= 1 repeat, found {} and {}",
         bytes, repeats);
  }
  const size_t n = bytes / sizeof(float) / 16 * 16;
  void* memory = std::aligned_alloc(64, n * sizeof(float));
  if (memory == nullptr) fail(ErrorKind::out_of_range, "measure_read_bandwidth: allocation of {} bytes failed", bytes);
  std::unique_ptr<float, void (*)(void*)> buffer(static_cast<float*>(memory), std::free);
  float* data = buffer.get();

  const Isa isa = detect_isa();
  auto sum_range = [isa](const float* p, size_t count) {
    switch (isa) {
      case Isa::avx512:
        return kernels::stream_sum_avx512(p, count);
      case Isa::avx2:
        return kernels::stream_sum_avx2(p, count);
      case Isa::scalar:
        break;
    }
    return kernels::stream_sum_scalar(p, count);
  };
  // Each thread touches (and so places) the part it later reads.
  const int n_threads = std::max(1, omp_get_max_threads());
#pragma omp parallel num_threads(n_threads)
  {
    const int thread = omp_get_thread_num();
    const int count = omp_get_num_threads();
    const size_t begin = n / 16 * size_t(thread) / size_t(count) * 16;
    const size_t end = n / 16 * size_t(thread + 1) / size_t(count) * 16;
    for (size_t i = begin; i < end; ++i) data[i] = float(i & 1023) * 0.001f;
  }

  std::vector<double> rates;
  volatile float sink = 0.0f;
  for (int pass = 0; pass < repeats + 1; ++pass) {
    float total = 0.0f;
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(n_threads) reduction(+ : total)
    {
      const int thread = omp_get_thread_num();
      const int count = omp_get_num_threads();
      const size_t begin = n / 16 * size_t(thread) / size_t(count) * 16;
      const size_t end = n / 16 * size_t(thread + 1) / size_t(count) * 16;
      total += sum_range(data + begin, end - begin);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    sink = sink + total;
    if (pass > 0) rates.push_back(double(n * sizeof(float)) / seconds);  // the first pass warms up
  }
  (void)sink;
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace slm::cpu
