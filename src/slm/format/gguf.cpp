// GGUF reader: every read is bounds-checked against the image, every count is checked against the
// bytes that remain before anything is allocated, and sizes are computed without overflow.
#include "slm/format/gguf.hpp"

#include <bit>
#include <cstring>

#include "slm/util/error.hpp"

namespace slm::gguf {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

constexpr uint64_t kDefaultAlignment = 32;

// Smallest encoding of a value of each type: lets a count be checked against the remaining bytes.
uint64_t min_encoded_bytes(ValueType type) {
  switch (type) {
    case ValueType::u8:
    case ValueType::i8:
    case ValueType::boolean: return 1;
    case ValueType::u16:
    case ValueType::i16: return 2;
    case ValueType::u32:
    case ValueType::i32:
    case ValueType::f32: return 4;
    case ValueType::u64:
    case ValueType::i64:
    case ValueType::f64:
    case ValueType::string: return 8;     // length
    case ValueType::array: return 4 + 8;  // element type and count
  }
  return 1;
}

class Reader {
 public:
  Reader(const uint8_t* bytes, size_t size, const Limits& limits, const std::string& source)
      : bytes_(bytes), size_(size), limits_(limits), source_(source) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& source() const { return source_; }

  void need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      fail(ErrorKind::format, "{}: expected {} bytes of {} at byte offset {}, found {} before the end of the file ({} bytes)",
           source_, n, what, pos_, remaining(), size_);
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view what) {
    const size_t at = pos_;
    const uint64_t length = read<uint64_t>(what);
    if (length > limits_.max_string_bytes) {
      fail(ErrorKind::out_of_range, "{}: {} at byte offset {}: expected a string of at most {} bytes, found a length of {}",
           source_, what, at, limits_.max_string_bytes, length);
    }
    need(length, what);
    std::string s(reinterpret_cast<const char*>(bytes_ + pos_), size_t(length));
    pos_ += size_t(length);
    return s;
  }

  ValueType read_value_type(std::string_view key, std::string_view what) {
    const size_t at = pos_;
    const uint32_t raw = read<uint32_t>(what);
    if (raw > uint32_t(ValueType::f64)) {
      fail(ErrorKind::format, "{}: key '{}': expected a value type 0..12, found {} at byte offset {}", source_, key, raw, at);
    }
    return ValueType(raw);
  }

  Value read_value(ValueType type, std::string_view key, uint32_t depth) {
    Value v;
    v.type = type;
    switch (type) {
      case ValueType::u8: v.data = uint64_t(read<uint8_t>("a u8 value")); break;
      case ValueType::i8: v.data = int64_t(read<int8_t>("an i8 value")); break;
      case ValueType::u16: v.data = uint64_t(read<uint16_t>("a u16 value")); break;
      case ValueType::i16: v.data = int64_t(read<int16_t>("an i16 value")); break;
      case ValueType::u32: v.data = uint64_t(read<uint32_t>("a u32 value")); break;
      case ValueType::i32: v.data = int64_t(read<int32_t>("an i32 value")); break;
      case ValueType::u64: v.data = read<uint64_t>("a u64 value"); break;
      case ValueType::i64: v.data = read<int64_t>("an i64 value"); break;
      case ValueType::f32: v.data = double(read<float>("an f32 value")); break;
      case ValueType::f64: v.data = read<double>("an f64 value"); break;
      case ValueType::boolean: {
        const size_t at = pos_;
        const uint8_t b = read<uint8_t>("a bool value");
        if (b > 1) {
          fail(ErrorKind::format, "{}: key '{}': expected a bool byte 0 or 1, found {} at byte offset {}", source_, key, b, at);
        }
        v.data = b == 1;
        break;
      }
      case ValueType::string: v.data = read_string("a string value"); break;
      case ValueType::array: v.data = read_array(key, depth + 1); break;
    }
    return v;
  }

  std::shared_ptr<Array> read_array(std::string_view key, uint32_t depth) {
    const size_t at = pos_;
    if (depth > limits_.max_array_depth) {
      fail(ErrorKind::out_of_range, "{}: key '{}': expected arrays nested at most {} deep, found deeper nesting at byte offset {}",
           source_, key, limits_.max_array_depth, at);
    }
    auto array = std::make_shared<Array>();
    array->type = read_value_type(key, "an array element type");
    const size_t count_at = pos_;
    const uint64_t count = read<uint64_t>("an array length");
    if (count > limits_.max_array_items) {
      fail(ErrorKind::out_of_range, "{}: key '{}': expected an array of at most {} items, found {} at byte offset {}", source_,
           key, limits_.max_array_items, count, count_at);
    }
    const uint64_t min_bytes = min_encoded_bytes(array->type);
    if (count > remaining() / min_bytes) {
      fail(ErrorKind::format,
           "{}: key '{}': an array of {} {} items needs at least {} bytes, found {} before the end of the file (byte offset {})",
           source_, key, count, value_type_name(array->type), count * min_bytes, remaining(), count_at);
    }
    array->items.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) array->items.push_back(read_value(array->type, key, depth));
    return array;
  }

 private:
  const uint8_t* bytes_;
  size_t size_;
  size_t pos_ = 0;
  const Limits& limits_;
  const std::string& source_;
};

}  // namespace

File File::open(const std::string& path, const Limits& limits) {
  auto mapping = std::make_shared<MappedFile>(path);
  File file = parse_named(mapping->data(), mapping->size(), limits, path);
  file.mapping_ = std::move(mapping);
  file.path_ = path;
  return file;
}

File File::parse(const uint8_t* bytes, size_t size, const Limits& limits) {
  return parse_named(bytes, size, limits, "GGUF image");
}

File File::parse_named(const uint8_t* bytes, size_t size, const Limits& limits, const std::string& source) {
  File file;
  file.bytes_ = bytes;
  file.size_ = size;
  Reader in(bytes, size, limits, source);

  // Header.
  if (size < 4 || std::memcmp(bytes, "GGUF", 4) != 0) {
    std::string found;
    for (size_t i = 0; i < std::min<size_t>(size, 4); ++i) found += fmt::format("{:02x} ", bytes[i]);
    fail(ErrorKind::format, "{}: expected the magic 'GGUF' (47 47 55 46) at byte offset 0, found {}", source,
         size == 0 ? std::string("an empty file") : found);
  }
  (void)in.read<uint32_t>("the magic");  // checked above
  const uint32_t version = in.read<uint32_t>("the version");
  if (version == 1) {
    fail(ErrorKind::unsupported, "{}: GGUF version 1 is not supported (expected version 2 or 3, found 1)", source);
  }
  if (version == 0x02000000u || version == 0x03000000u) {
    fail(ErrorKind::unsupported, "{}: big-endian GGUF files are not supported (expected a little-endian version 2 or 3)", source);
  }
  if (version != 2 && version != 3) {
    fail(ErrorKind::unsupported, "{}: expected GGUF version 2 or 3, found {} at byte offset 4", source, version);
  }
  file.version_ = version;
  const uint64_t n_tensors = in.read<uint64_t>("the tensor count");
  const uint64_t n_metadata = in.read<uint64_t>("the metadata count");
  if (n_tensors > limits.max_tensors) {
    fail(ErrorKind::out_of_range, "{}: expected at most {} tensors, found a count of {} at byte offset 8", source,
         limits.max_tensors, n_tensors);
  }
  if (n_metadata > limits.max_metadata_items) {
    fail(ErrorKind::out_of_range, "{}: expected at most {} metadata entries, found a count of {} at byte offset 16", source,
         limits.max_metadata_items, n_metadata);
  }
  constexpr uint64_t kMinEntryBytes = 8 + 4 + 1;  // key length, value type, smallest value
  if (n_metadata > in.remaining() / kMinEntryBytes) {
    fail(ErrorKind::format, "{}: {} metadata entries need at least {} bytes, found {} after the header", source, n_metadata,
         n_metadata * kMinEntryBytes, in.remaining());
  }

  // Metadata.
  file.metadata_.reserve(size_t(n_metadata));
  for (uint64_t i = 0; i < n_metadata; ++i) {
    const size_t at = in.pos();
    std::string key = in.read_string("a metadata key");
    if (file.metadata_index_.count(key) != 0) {
      fail(ErrorKind::format, "{}: expected unique metadata keys, found '{}' twice (second at byte offset {})", source, key, at);
    }
    const ValueType type = in.read_value_type(key, "a metadata value type");
    Value value = in.read_value(type, key, 0);
    file.metadata_index_.emplace(key, file.metadata_.size());
    file.metadata_.emplace_back(std::move(key), std::move(value));
  }

  // Alignment.
  if (const Value* alignment = file.find("general.alignment")) {
    if (!alignment->is_integer()) {
      fail(ErrorKind::format, "{}: key 'general.alignment': expected an unsigned integer, found a {}", source,
           value_type_name(alignment->type));
    }
    const int64_t a = alignment->as_int();
    if (a <= 0 || !std::has_single_bit(uint64_t(a))) {
      fail(ErrorKind::format, "{}: key 'general.alignment': expected a non-zero power of two, found {}", source, a);
    }
    file.alignment_ = uint64_t(a);
  } else {
    file.alignment_ = kDefaultAlignment;
  }

  // Tensor infos.
  constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset
  if (n_tensors > in.remaining() / kMinTensorInfoBytes) {
    fail(ErrorKind::format, "{}: {} tensor infos need at least {} bytes, found {} after the metadata (byte offset {})", source,
         n_tensors, n_tensors * kMinTensorInfoBytes, in.remaining(), in.pos());
  }
  file.tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = in.pos();
    TensorInfo info;
    info.name = in.read_string("a tensor name");
    if (file.tensor_index_.count(info.name) != 0) {
      fail(ErrorKind::format, "{}: expected unique tensor names, found '{}' twice (second at byte offset {})", source, info.name,
           at);
    }
    const size_t dims_at = in.pos();
    const uint32_t n_dims = in.read<uint32_t>("a tensor dimension count");
    if (n_dims > limits.max_dims) {
      fail(ErrorKind::out_of_range, "{}: tensor '{}': expected at most {} dimensions, found {} at byte offset {}", source,
           info.name, limits.max_dims, n_dims, dims_at);
    }
    info.dims.resize(n_dims);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      info.dims[d] = in.read<uint64_t>("a tensor dimension");
      if (info.dims[d] > uint64_t(INT64_MAX) || __builtin_mul_overflow(n_elements, info.dims[d], &n_elements) ||
          n_elements > uint64_t(INT64_MAX)) {
        fail(ErrorKind::format, "{}: tensor '{}': dimensions up to {} overflow the element count (dimension {} is {})", source,
             info.name, d, d, info.dims[d]);
      }
    }
    const size_t type_at = in.pos();
    const uint32_t type = in.read<uint32_t>("a tensor type");
    const std::optional<DTypeTraits> traits = dtype_traits(type);
    if (!traits) {
      fail(ErrorKind::unsupported, "{}: tensor '{}': expected a known tensor type, found type number {} at byte offset {}", source,
           info.name, type, type_at);
    }
    info.type = DType(type);
    const uint64_t row = n_dims == 0 ? 1 : info.dims[0];
    if (row % traits->block_size != 0) {
      fail(ErrorKind::format, "{}: tensor '{}': expected a row length that is a multiple of {} (the block size of {}), found {}",
           source, info.name, traits->block_size, traits->name, row);
    }
    const size_t offset_at = in.pos();
    info.offset = in.read<uint64_t>("a tensor data offset");
    if (info.offset % file.alignment_ != 0) {
      fail(ErrorKind::format, "{}: tensor '{}': expected a data offset aligned to {} bytes, found {} (byte offset {})", source,
           info.name, file.alignment_, info.offset, offset_at);
    }
    file.tensor_index_.emplace(info.name, file.tensors_.size());
    file.tensors_.push_back(std::move(info));
  }

  // Data section: starts at the next multiple of the alignment; every tensor must lie inside it.
  const uint64_t pos = in.pos();
  const uint64_t pad = (file.alignment_ - pos % file.alignment_) % file.alignment_;
  uint64_t data_offset = 0;
  if (__builtin_add_overflow(pos, pad, &data_offset)) data_offset = UINT64_MAX;
  const uint64_t available = data_offset <= size ? size - data_offset : 0;
  if (data_offset > size && !file.tensors_.empty()) {
    fail(ErrorKind::format, "{}: expected the tensor data section at byte offset {}, found the end of the file at {}", source,
         data_offset, size);
  }
  file.data_offset_ = data_offset <= size ? size_t(data_offset) : size;
  for (const TensorInfo& info : file.tensors_) {
    // Overflow-safe: blocks per row times block bytes times the outer dimensions.
    const DTypeTraits& t = dtype_traits(info.type);
    const uint64_t row = info.dims.empty() ? 1 : info.dims[0];
    uint64_t n_bytes = 0;
    bool overflow = __builtin_mul_overflow(row / t.block_size, uint64_t(t.block_bytes), &n_bytes);
    for (size_t d = 1; d < info.dims.size() && !overflow; ++d) overflow = __builtin_mul_overflow(n_bytes, info.dims[d], &n_bytes);
    if (overflow) fail(ErrorKind::format, "{}: tensor '{}': byte size overflows 64 bits", source, info.name);
    if (info.offset > available || n_bytes > available - info.offset) {
      fail(ErrorKind::format,
           "{}: tensor '{}': expected its {} bytes at data offset {} to lie inside the data section of {} bytes (file byte "
           "offset {})",
           source, info.name, n_bytes, info.offset, available, data_offset);
    }
  }
  return file;
}

const Value* File::find(std::string_view key) const {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

namespace {

[[noreturn]] void key_type_error(const std::string& path, std::string_view key, std::string_view wanted, const Value& v) {
  fail(ErrorKind::format, "{}: key '{}': expected {}, found a {}", path.empty() ? "GGUF image" : path, key, wanted,
       value_type_name(v.type));
}

}  // namespace

std::optional<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != ValueType::string) key_type_error(path_, key, "a string", *v);
  return v->as_string();
}

std::optional<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_integer()) key_type_error(path_, key, "an integer", *v);
  return v->as_int();
}

std::optional<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_integer() && !v->is_float()) key_type_error(path_, key, "a number", *v);
  return v->as_float();
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != ValueType::boolean) key_type_error(path_, key, "a bool", *v);
  return v->as_bool();
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* File::tensor_data(const TensorInfo& info) const { return bytes_ + data_offset_ + info.offset; }

}  // namespace slm::gguf
