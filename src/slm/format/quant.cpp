// Argument checks and dispatch of quant.hpp to the format families (quant_legacy.cpp, quant_k.cpp,
// quant_iq4.cpp), the plain F32/F16/BF16 conversions, and the reference dot product.
#include "slm/format/quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "slm/format/quant_internal.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

using namespace quant_detail;

constexpr float kLargestInput = 65504.0f;  // the largest finite f16: block scales and minimums are f16

std::string type_text(DType type) {
  const auto traits = dtype_traits(uint32_t(type));
  return traits ? std::string(traits->name) : fmt::format("type number {}", uint32_t(type));
}

void require_supported(DType type, const char* what) {
  if (!quant_supported(type)) {
    fail(ErrorKind::unsupported,
         "{}: expected one of f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, q8_K, "
         "iq4_nl, iq4_xs; found {}",
         what, type_text(type));
  }
}

// Checks n and the buffers; returns the number of blocks.
int64_t require_row(DType type, int64_t n, const void* a, const void* b, const char* what) {
  require_supported(type, what);
  if (n < 0) fail(ErrorKind::invalid_argument, "{}: expected an element count >= 0, found {}", what, n);
  const DTypeTraits& traits = dtype_traits(type);
  if (n % int64_t(traits.block_size) != 0) {
    fail(ErrorKind::invalid_argument, "{}: expected a row length that is a multiple of {} (the block size of {}), found {}",
         what, traits.block_size, traits.name, n);
  }
  if (n > 0 && (a == nullptr || b == nullptr)) fail(ErrorKind::invalid_argument, "{}: expected buffers, found null", what);
  return n / int64_t(traits.block_size);
}

void require_quantizable(const float* src, const float* importance, int64_t n, DType type) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = src[i];
    if (!std::isfinite(v)) {
      fail(ErrorKind::invalid_argument, "quantize_row ({}): expected finite values, found {} at element {}",
           dtype_name(type), v, i);
    }
    if (std::fabs(v) > kLargestInput) {
      fail(ErrorKind::out_of_range,
           "quantize_row ({}): expected values within the f16 range (|x| <= 65504), found {} at element {}",
           dtype_name(type), v, i);
    }
  }
  if (importance == nullptr) return;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(importance[i]) || importance[i] < 0.0f) {
      fail(ErrorKind::invalid_argument, "quantize_row ({}): expected finite importance >= 0, found {} at element {}",
           dtype_name(type), importance[i], i);
    }
  }
}

}  // namespace

bool quant_supported(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return true;
    default:
      return is_block_quantized(type);
  }
}

bool is_block_quantized(DType type) {
  switch (type) {
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
    case DType::IQ4_NL:
    case DType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

size_t quantized_row_bytes(DType type, int64_t n) {
  if (n < 0) fail(ErrorKind::invalid_argument, "quantized_row_bytes: expected n >= 0, found {}", n);
  return dtype_row_bytes(type, uint64_t(n));
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  const int64_t blocks = require_row(type, n, src, dst, "dequantize_row");
  if (n == 0) return;
  const auto* s = static_cast<const uint8_t*>(src);
  switch (type) {
    case DType::F32:
      std::memcpy(dst, s, size_t(n) * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = read_f16(s + 2 * i);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(read_u16(s + 2 * i));
      return;
    case DType::Q4_0: return dequantize_q4_0(s, dst, blocks);
    case DType::Q4_1: return dequantize_q4_1(s, dst, blocks);
    case DType::Q5_0: return dequantize_q5_0(s, dst, blocks);
    case DType::Q5_1: return dequantize_q5_1(s, dst, blocks);
    case DType::Q8_0: return dequantize_q8_0(s, dst, blocks);
    case DType::Q2_K: return dequantize_q2_k(s, dst, blocks);
    case DType::Q3_K: return dequantize_q3_k(s, dst, blocks);
    case DType::Q4_K: return dequantize_q4_k(s, dst, blocks);
    case DType::Q5_K: return dequantize_q5_k(s, dst, blocks);
    case DType::Q6_K: return dequantize_q6_k(s, dst, blocks);
    case DType::Q8_K: return dequantize_q8_k(s, dst, blocks);
    case DType::IQ4_NL: return dequantize_iq4_nl(s, dst, blocks);
    case DType::IQ4_XS: return dequantize_iq4_xs(s, dst, blocks);
    default:
      break;
  }
  fail(ErrorKind::internal, "dequantize_row: no decoder for {}", type_text(type));
}

void quantize_row(DType type, const float* src, void* dst, int64_t n, const float* importance) {
  const int64_t blocks = require_row(type, n, src, dst, "quantize_row");
  if (n == 0) return;
  require_quantizable(src, importance, n, type);
  auto* d = static_cast<uint8_t*>(dst);
  switch (type) {
    case DType::F32:
      std::memcpy(d, src, size_t(n) * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) write_f16(d + 2 * i, src[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case DType::Q4_0: return quantize_q4_0(src, d, blocks, importance);
    case DType::Q4_1: return quantize_q4_1(src, d, blocks, importance);
    case DType::Q5_0: return quantize_q5_0(src, d, blocks, importance);
    case DType::Q5_1: return quantize_q5_1(src, d, blocks, importance);
    case DType::Q8_0: return quantize_q8_0(src, d, blocks);
    case DType::Q2_K: return quantize_q2_k(src, d, blocks, importance);
    case DType::Q3_K: return quantize_q3_k(src, d, blocks, importance);
    case DType::Q4_K: return quantize_q4_k(src, d, blocks, importance);
    case DType::Q5_K: return quantize_q5_k(src, d, blocks, importance);
    case DType::Q6_K: return quantize_q6_k(src, d, blocks, importance);
    case DType::Q8_K: return quantize_q8_k(src, d, blocks);
    case DType::IQ4_NL: return quantize_iq4_nl(src, d, blocks, importance);
    case DType::IQ4_XS: return quantize_iq4_xs(src, d, blocks, importance);
    default:
      break;
  }
  fail(ErrorKind::internal, "quantize_row: no encoder for {}", type_text(type));
}

float vec_dot(DType weight_type, const void* w_row, const float* x, int64_t n) {
  require_row(weight_type, n, w_row, x, "vec_dot");
  const DTypeTraits& traits = dtype_traits(weight_type);
  const auto* w = static_cast<const uint8_t*>(w_row);
  // Block by block (the largest block has 256 elements), each dequantized then multiplied.
  const int64_t chunk = int64_t(traits.block_size) * (traits.block_size == 1 ? 256 : 1);
  float values[kSuperBlock];
  double sum = 0.0;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t count = std::min(chunk, n - start);
    dequantize_row(weight_type, w + size_t(start / traits.block_size) * traits.block_bytes, values, count);
    for (int64_t i = 0; i < count; ++i) sum += double(values[i]) * double(x[start + i]);
  }
  return float(sum);
}

}  // namespace slm
