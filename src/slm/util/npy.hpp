// NumPy .npy files (format version 1.0 written; 1.x, 2.x and 3.x read): float32 and int32 arrays,
// little-endian, C order, any number of dimensions. Used for reference fixtures and logits dumps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slm {

struct NpyArray {
  std::string dtype;             // as stored in the file: "<f4", "<i4", "<f8" or "<i8"
  std::vector<uint64_t> shape;   // outermost first; empty for a scalar
  std::vector<float> f32;        // filled for "<f4" and "<f8" (converted)
  std::vector<int32_t> i32;      // filled for "<i4" and "<i8" (converted; out-of-range values are an error)
  uint64_t n_elements() const;
};

// Writes `data` (product of `shape` elements) as a '<f4' / '<i4' array; Error(io) on failure.
void npy_write_f32(const std::string& path, const float* data, const std::vector<uint64_t>& shape);
void npy_write_i32(const std::string& path, const int32_t* data, const std::vector<uint64_t>& shape);

// Reads a file written by numpy.save; Error(format) for malformed files, Error(unsupported) for
// big-endian, Fortran-order or other dtypes, Error(io) when the file cannot be read.
NpyArray npy_read(const std::string& path);
// Parses an in-memory image of a .npy file.
NpyArray npy_parse(const uint8_t* bytes, size_t size, const std::string& source = "npy image");

}  // namespace slm
