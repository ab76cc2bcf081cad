// GGUF v2/v3: reader (mmapped, bounds-checked, size-limited) and writer.
// Layout facts: little-endian; header magic "GGUF", version, tensor count (u64), metadata count (u64);
// metadata key/value pairs; tensor infos (name, n_dims, dims innermost first, type, offset);
// tensor data aligned to `general.alignment` (default 32) from the start of the data section.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "slm/format/dtype.hpp"
#include "slm/util/mmap.hpp"

namespace slm::gguf {

enum class ValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12,
};

struct Value;
struct Array {
  ValueType type = ValueType::u8;  // element type (arrays of arrays are allowed by the format)
  std::vector<Value> items;
};

struct Value {
  ValueType type = ValueType::u8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<Array>> data;

  static Value of_u8(uint8_t v);
  static Value of_i8(int8_t v);
  static Value of_u16(uint16_t v);
  static Value of_i16(int16_t v);
  static Value of_u32(uint32_t v);
  static Value of_i32(int32_t v);
  static Value of_u64(uint64_t v);
  static Value of_i64(int64_t v);
  static Value of_f32(float v);
  static Value of_f64(double v);
  static Value of_bool(bool v);
  static Value of_string(std::string v);
  static Value of_strings(const std::vector<std::string>& v);
  static Value of_i32s(const std::vector<int32_t>& v);
  static Value of_f32s(const std::vector<float>& v);
  // An array of `element_type` holding `items` (each must be of that type; checked by Writer::set).
  static Value of_array(ValueType element_type, std::vector<Value> items);

  bool is_integer() const;  // any of u8..i64
  bool is_float() const;    // f32 or f64
  // Checked accessors: throw Error(format) naming the actual type when the type does not fit.
  int64_t as_int() const;       // any integer type (u64 above INT64_MAX is an error)
  double as_float() const;      // f32, f64, or any integer
  bool as_bool() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  std::vector<std::string> as_strings() const;  // array of strings
  std::vector<int64_t> as_ints() const;         // array of integers
  std::vector<float> as_floats() const;         // array of f32/f64/integers
  std::string to_display(size_t max_items = 8) const;  // short human form for `slm info`
  bool operator==(const Value& other) const;  // deep comparison (arrays by content)
};

// "u8", "i32", "string", "array", ... as the GGUF specification names the value types.
std::string_view value_type_name(ValueType type);

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // innermost (contiguous) dimension first, as GGUF stores them
  DType type = DType::F32;
  uint64_t offset = 0;         // from the start of the data section
  uint64_t n_elements() const;
  uint64_t n_bytes() const;
};

struct Limits {
  uint64_t max_string_bytes = 64ull << 20;    // one string
  uint64_t max_array_items = 16ull << 20;     // one array (a 256k vocabulary fits)
  uint64_t max_metadata_items = 1u << 16;
  uint64_t max_tensors = 1u << 20;
  uint32_t max_dims = 4;
  uint32_t max_array_depth = 8;               // arrays of arrays nest at most this deep
};

class File {
 public:
  // Opens and maps `path`, parses header, metadata and tensor infos, checks every tensor lies inside
  // the mapping and is aligned. Throws Error(format) saying what was expected and found, and where.
  static File open(const std::string& path, const Limits& limits = {});
  // Parses an in-memory image (used by the fuzz target and tests); `bytes` must outlive the File.
  static File parse(const uint8_t* bytes, size_t size, const Limits& limits = {});

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  // Typed look-ups: nullopt when absent, Error(format) when present with an unsuitable type.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  const uint8_t* tensor_data(const TensorInfo& info) const;
  size_t data_offset() const { return data_offset_; }
  size_t file_size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  static File parse_named(const uint8_t* bytes, size_t size, const Limits& limits, const std::string& source);
  std::shared_ptr<MappedFile> mapping_;
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Streams a GGUF v3 file: set metadata and tensor infos first, then write the data in order.
class Writer {
 public:
  explicit Writer(uint64_t alignment = 32);
  void set(std::string key, Value value);  // replaces an existing key
  // Adds a tensor; `data` must hold n_bytes of the given type and shape (dims innermost first) and
  // stay valid until write() returns.
  void add_tensor(std::string name, DType type, std::vector<uint64_t> dims, const void* data);
  // Writes to `path` + ".tmp" and renames into place; throws Error(io) on failure.
  void write(const std::string& path) const;

 private:
  struct PendingTensor {
    TensorInfo info;
    const void* data;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace slm::gguf
