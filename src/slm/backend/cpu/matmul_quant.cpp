// Run-time choice between the integer block kernels (one per instruction set) and the reference path
// for quantized weights.
#include <algorithm>
#include <vector>

#include "slm/backend/cpu/matmul_quant.hpp"
#include "slm/backend/cpu/matmul_quant_kernels.hpp"
#include "slm/util/error.hpp"

namespace slm::cpu {
namespace {

bool cpu_has(QuantPath path) {
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  switch (path) {
    case QuantPath::reference:
      return true;
    case QuantPath::avx2:
      return avx2;
    case QuantPath::avx512:
      return avx512;
    case QuantPath::avx512_vnni:
      return avx512 && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

bool integer_kernel_handles(DType w_type) {
  switch (w_type) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::IQ4_NL:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

QuantPath best_path() {
  const auto paths = quant_paths();
  return paths.back();
}

}  // namespace

const char* quant_path_name(QuantPath path) {
  switch (path) {
    case QuantPath::reference:
      return "reference";
    case QuantPath::avx2:
      return "avx2";
    case QuantPath::avx512:
      return "avx512";
    case QuantPath::avx512_vnni:
      return "avx512_vnni";
  }
  return "unknown";
}

std::vector<QuantPath> quant_paths() {
  std::vector<QuantPath> paths;
  for (const QuantPath p : {QuantPath::reference, QuantPath::avx2, QuantPath::avx512, QuantPath::avx512_vnni}) {
    if (cpu_has(p)) paths.push_back(p);
  }
  return paths;
}

bool quant_path_handles(QuantPath path, DType w_type) {
  return path != QuantPath::reference && cpu_has(path) && integer_kernel_handles(w_type);
}

bool matmul_quant_has_simd(DType w_type) {
  static const QuantPath best = best_path();
  return quant_path_handles(best, w_type);
}

void matmul_quant_path(QuantPath path, DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x,
                       int64_t n_tokens, float* y) {
  if (path == QuantPath::reference) {
    matmul_quant_ref(w_type, w, n_out, n_in, x, n_tokens, y);
    return;
  }
  if (!cpu_has(path)) {
    fail(ErrorKind::unsupported, "matmul_quant: expected a path this CPU supports, found {}", quant_path_name(path));
  }
  if (!integer_kernel_handles(w_type) || n_out <= 0 || n_in <= 0 || n_tokens <= 0 || w == nullptr ||
      x == nullptr || y == nullptr) {
    if (!integer_kernel_handles(w_type) && is_block_quantized(w_type)) {
      fail(ErrorKind::unsupported, "matmul_quant: expected a type the {} path handles, found {}",
           quant_path_name(path), dtype_name(w_type));
    }
    matmul_quant_ref(w_type, w, n_out, n_in, x, n_tokens, y);  // its checks and errors for edge cases
    return;
  }
  quantized_row_bytes(w_type, n_in);  // checks n_in against the block size
  const auto* wb = static_cast<const uint8_t*>(w);
  switch (path) {
    case QuantPath::avx2:
      kernels::matmul_quant_avx2(w_type, wb, n_out, n_in, x, n_tokens, y);
      break;
    case QuantPath::avx512:
      kernels::matmul_quant_avx512(w_type, wb, n_out, n_in, x, n_tokens, y);
      break;
    default:
      kernels::matmul_quant_avx512vnni(w_type, wb, n_out, n_in, x, n_tokens, y);
      break;
  }
}

void matmul_quant(DType w_type, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tokens,
                  float* y) {
  static const QuantPath best = best_path();
  if (!quant_path_handles(best, w_type)) {
    matmul_quant_ref(w_type, w, n_out, n_in, x, n_tokens, y);
    return;
  }
  matmul_quant_path(best, w_type, w, n_out, n_in, x, n_tokens, y);
}

}  // namespace slm::cpu
