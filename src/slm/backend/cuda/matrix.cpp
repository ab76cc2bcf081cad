// Weight matrices in device layouts (see DeviceMatrix in cuda.hpp): rows checked, block formats
// whose blocks are not 16-byte multiples split into aligned planes on the host, then one upload.
#include <cstring>
#include <vector>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/util/error.hpp"

namespace slm::cuda {

namespace {

constexpr size_t kQ8Bytes = 34, kQ4Bytes = 18, kQ4KBytes = 144, kQ6Bytes = 210, kQ5Bytes = 22, kQ5KBytes = 176,
                 kIq4XsBytes = 136, kQ51Bytes = 24;

// Q8_0 blocks (d f16 | q int8[32]) -> q plane, d plane.
void split_q8_0(const uint8_t* src, int64_t n_blocks, uint8_t* q, uint8_t* d) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ8Bytes) {
    std::memcpy(d + 2 * b, src, 2);
    std::memcpy(q + 32 * b, src + 2, 32);
  }
}

// Q4_0 blocks (d f16 | qs u8[16]) -> qs plane, d plane.
void split_q4_0(const uint8_t* src, int64_t n_blocks, uint8_t* qs, uint8_t* d) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ4Bytes) {
    std::memcpy(d + 2 * b, src, 2);
    std::memcpy(qs + 16 * b, src + 2, 16);
  }
}

// Q5_0 blocks (d f16 | qh u32 | qs u8[16]) -> qs plane, qh plane, d plane.
void split_q5_0(const uint8_t* src, int64_t n_blocks, uint8_t* qs, uint8_t* qh, uint8_t* d) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ5Bytes) {
    std::memcpy(d + 2 * b, src, 2);
    std::memcpy(qh + 4 * b, src + 2, 4);
    std::memcpy(qs + 16 * b, src + 6, 16);
  }
}

// Q5_1 blocks (d f16 | m f16 | qh u32 | qs u8[16]) -> qs plane, qh plane, (d, m) plane.
void split_q5_1(const uint8_t* src, int64_t n_blocks, uint8_t* qs, uint8_t* qh, uint8_t* dm) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ51Bytes) {
    std::memcpy(dm + 4 * b, src, 4);
    std::memcpy(qh + 4 * b, src + 4, 4);
    std::memcpy(qs + 16 * b, src + 8, 16);
  }
}

// The 8 six-bit scales, then the 8 minimums, of the 12 packed bytes of Q4_K and Q5_K.
void unpack_scale_mins(const uint8_t* packed, uint8_t* out) {
  for (int s = 0; s < 8; ++s) {
    if (s < 4) {
      out[s] = packed[s] & 63;
      out[8 + s] = packed[s + 4] & 63;
    } else {
      out[s] = uint8_t((packed[s + 4] & 15) | ((packed[s - 4] >> 6) << 4));
      out[8 + s] = uint8_t((packed[s + 4] >> 4) | ((packed[s] >> 6) << 4));
    }
  }
}

// Q5_K super-blocks (d f16 | dmin f16 | 12 packed scale bytes | qh[32] | qs[128]) -> bits plane
// (qs[128] | qh[32]), unpacked scales and minimums, (d, dmin) plane.
void split_q5_k(const uint8_t* src, int64_t n_blocks, uint8_t* bits, uint8_t* scale_mins, uint8_t* dm) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ5KBytes) {
    unpack_scale_mins(src + 4, scale_mins + 16 * b);
    std::memcpy(dm + 4 * b, src, 4);
    std::memcpy(bits + 160 * b, src + 48, 128);
    std::memcpy(bits + 160 * b + 128, src + 16, 32);
  }
}

// IQ4_XS super-blocks (d f16 | scales_h u16 | scales_l u8[4] | qs[128]) -> qs plane, the 8 sub-block
// scales minus 32 as int8, d plane.
void split_iq4_xs(const uint8_t* src, int64_t n_blocks, uint8_t* qs, uint8_t* scales, uint8_t* d) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kIq4XsBytes) {
    const unsigned scales_h = unsigned(src[2]) | (unsigned(src[3]) << 8);
    for (int s = 0; s < 8; ++s) {
      const int ls = ((src[4 + s / 2] >> (4 * (s % 2))) & 15) | int(((scales_h >> (2 * s)) & 3u) << 4);
      scales[8 * b + s] = uint8_t(int8_t(ls - 32));
    }
    std::memcpy(d + 2 * b, src, 2);
    std::memcpy(qs + 128 * b, src + 8, 128);
  }
}

// Q4_K super-blocks (d f16 | dmin f16 | 12 bytes of packed 6-bit scales and minimums | qs[128]) ->
// qs plane, unpacked scales and minimums (8 + 8 bytes), (d, dmin) plane.
void split_q4_k(const uint8_t* src, int64_t n_blocks, uint8_t* qs, uint8_t* scale_mins, uint8_t* dm) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ4KBytes) {
    unpack_scale_mins(src + 4, scale_mins + 16 * b);
    std::memcpy(dm + 4 * b, src, 4);
    std::memcpy(qs + 128 * b, src + 16, 128);
  }
}

// Q6_K super-blocks (ql[128] | qh[64] | scales[16] | d f16) -> bits, scales and d planes.
void split_q6_k(const uint8_t* src, int64_t n_blocks, uint8_t* bits, uint8_t* scales, uint8_t* d) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ6Bytes) {
    std::memcpy(bits + 192 * b, src, 192);
    std::memcpy(scales + 16 * b, src + 192, 16);
    std::memcpy(d + 2 * b, src + 208, 2);
  }
}

}  // namespace

size_t device_matrix_bytes(DType type, size_t gguf_bytes) {
  switch (type) {
    case DType::Q4_K: return gguf_bytes / kQ4KBytes * 148;  // unpacked scales and minimums
    case DType::Q5_K: return gguf_bytes / kQ5KBytes * 180;
    case DType::IQ4_XS: return gguf_bytes / kIq4XsBytes * 138;  // one byte per sub-block scale
    default: return gguf_bytes;
  }
}

bool matrix_type_supported(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q6_K:
    case DType::Q5_0:
    case DType::Q5_K:
    case DType::IQ4_XS:
    case DType::Q5_1:
    case DType::IQ4_NL:
      return true;
    default:
      return false;
  }
}

DeviceMatrix upload_matrix(DType type, const void* host_rows, int64_t n_out, int64_t n_in) {
  if (!matrix_type_supported(type)) {
    fail(ErrorKind::unsupported, "CUDA: expected weights of type f32, f16, bf16, q8_0, q4_0, q5_0, q5_1, iq4_nl, q4_K, q5_K, q6_K or iq4_xs, "
         "found {}",
         dtype_name(type));
  }
  if (n_out <= 0 || n_in <= 0) {
    fail(ErrorKind::invalid_argument, "CUDA: expected a matrix with rows and columns, found {} x {}", n_out, n_in);
  }
  if (host_rows == nullptr) fail(ErrorKind::invalid_argument, "CUDA: expected matrix data, found a null pointer");
  const auto& traits = dtype_traits(type);
  // Plain types: whole 16-byte pieces per row; block types: whole blocks.
  const int64_t multiple = type == DType::F32 ? 4 : (traits.block_size == 1 ? 8 : int64_t(traits.block_size));
  if (n_in % multiple != 0) {
    fail(ErrorKind::unsupported, "CUDA: expected {} rows of a multiple of {} elements, found {}", dtype_name(type),
         multiple, n_in);
  }
  const size_t row_bytes = dtype_row_bytes(type, uint64_t(n_in));
  const int64_t n_blocks = n_out * (n_in / int64_t(traits.block_size));
  const size_t total = device_matrix_bytes(type, row_bytes * size_t(n_out));
  const auto* src = static_cast<const uint8_t*>(host_rows);

  DeviceMatrix m;
  m.type = type;
  m.n_out = n_out;
  m.n_in = n_in;
  m.data = DeviceBuffer(total);
  switch (type) {
    case DType::Q8_0: {
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 32;
      split_q8_0(src, n_blocks, host.data(), host.data() + m.plane1);
      m.data.upload(host.data(), total);
      break;
    }
    case DType::Q4_0:
    case DType::IQ4_NL: {  // the same 18-byte blocks
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 16;
      split_q4_0(src, n_blocks, host.data(), host.data() + m.plane1);
      m.data.upload(host.data(), total);
      break;
    }
    case DType::Q4_K: {
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 128;
      m.plane2 = m.plane1 + size_t(n_blocks) * 16;
      split_q4_k(src, n_blocks, host.data(), host.data() + m.plane1, host.data() + m.plane2);
      m.data.upload(host.data(), total);
      break;
    }
    case DType::Q6_K: {
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 192;
      m.plane2 = m.plane1 + size_t(n_blocks) * 16;
      split_q6_k(src, n_blocks, host.data(), host.data() + m.plane1, host.data() + m.plane2);
      m.data.upload(host.data(), total);
      break;
    }
    case DType::Q5_0: {
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 16;
      m.plane2 = m.plane1 + size_t(n_blocks) * 4;
      split_q5_0(src, n_blocks, host.data(), host.data() + m.plane1, host.data() + m.plane2);
      m.data.upload(host.data(), total);
      break;
    }
    case DType::Q5_1: {
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 16;
      m.plane2 = m.plane1 + size_t(n_blocks) * 4;
      split_q5_1(src, n_blocks, host.data(), host.data() + m.plane1, host.data() + m.plane2);
      m.data.upload(host.data(), total);
      break;
    }
    case DType::Q5_K: {
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 160;
      m.plane2 = m.plane1 + size_t(n_blocks) * 16;
      split_q5_k(src, n_blocks, host.data(), host.data() + m.plane1, host.data() + m.plane2);
      m.data.upload(host.data(), total);
      break;
    }
    case DType::IQ4_XS: {
      std::vector<uint8_t> host(total);
      m.plane1 = size_t(n_blocks) * 128;
      m.plane2 = m.plane1 + size_t(n_blocks) * 8;
      split_iq4_xs(src, n_blocks, host.data(), host.data() + m.plane1, host.data() + m.plane2);
      m.data.upload(host.data(), total);
      break;
    }
    default:
      m.data.upload(src, total);
      break;
  }
  return m;
}

}  // namespace slm::cuda
