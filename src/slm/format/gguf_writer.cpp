// GGUF v3 writer: header, metadata, tensor infos, then each tensor's data padded to the alignment.
// Written to a temporary file beside the target and renamed into place.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "slm/format/gguf.hpp"
#include "slm/util/error.hpp"

namespace slm::gguf {
namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
constexpr size_t kMaxTensorNameBytes = 63;  // llama.cpp rejects tensor names of 64 bytes or more

class Buffer {
 public:
  template <typename T>
  void put(T value) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    while (bytes_.size() % alignment != 0) bytes_.push_back(0);
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Integer payload of `v` if it lies in [lo, hi]; otherwise Error(invalid_argument).
template <typename T>
T checked_integer(const Value& v, std::string_view key) {
  using limits = std::numeric_limits<T>;
  if (const auto* u = std::get_if<uint64_t>(&v.data)) {
    if (*u <= uint64_t(limits::max())) return T(*u);
    fail(ErrorKind::invalid_argument, "key '{}': value {} does not fit a {}", key, *u, value_type_name(v.type));
  }
  if (const auto* i = std::get_if<int64_t>(&v.data)) {
    const bool fits = limits::is_signed ? (*i >= int64_t(limits::min()) && *i <= int64_t(limits::max()))
                                        : (*i >= 0 && uint64_t(*i) <= uint64_t(limits::max()));
    if (fits) return T(*i);
    fail(ErrorKind::invalid_argument, "key '{}': value {} does not fit a {}", key, *i, value_type_name(v.type));
  }
  fail(ErrorKind::invalid_argument, "key '{}': a {} value must hold an integer", key, value_type_name(v.type));
}

void encode_value(Buffer& out, const Value& v, std::string_view key, uint32_t depth);

void encode_payload(Buffer& out, const Value& v, std::string_view key, uint32_t depth) {
  switch (v.type) {
    case ValueType::u8: out.put(checked_integer<uint8_t>(v, key)); return;
    case ValueType::i8: out.put(checked_integer<int8_t>(v, key)); return;
    case ValueType::u16: out.put(checked_integer<uint16_t>(v, key)); return;
    case ValueType::i16: out.put(checked_integer<int16_t>(v, key)); return;
    case ValueType::u32: out.put(checked_integer<uint32_t>(v, key)); return;
    case ValueType::i32: out.put(checked_integer<int32_t>(v, key)); return;
    case ValueType::u64: out.put(checked_integer<uint64_t>(v, key)); return;
    case ValueType::i64: out.put(checked_integer<int64_t>(v, key)); return;
    case ValueType::f32:
    case ValueType::f64: {
      const auto* d = std::get_if<double>(&v.data);
      if (d == nullptr) fail(ErrorKind::invalid_argument, "key '{}': a {} value must hold a number", key, value_type_name(v.type));
      if (v.type == ValueType::f32) {
        out.put(float(*d));
      } else {
        out.put(*d);
      }
      return;
    }
    case ValueType::boolean: {
      const auto* b = std::get_if<bool>(&v.data);
      if (b == nullptr) fail(ErrorKind::invalid_argument, "key '{}': a bool value must hold a bool", key);
      out.put(uint8_t(*b ? 1 : 0));
      return;
    }
    case ValueType::string: {
      const auto* s = std::get_if<std::string>(&v.data);
      if (s == nullptr) fail(ErrorKind::invalid_argument, "key '{}': a string value must hold a string", key);
      out.put_string(*s);
      return;
    }
    case ValueType::array: {
      const auto* a = std::get_if<std::shared_ptr<Array>>(&v.data);
      if (a == nullptr || *a == nullptr) fail(ErrorKind::invalid_argument, "key '{}': an array value must hold an array", key);
      if (depth >= Limits{}.max_array_depth) {
        fail(ErrorKind::invalid_argument, "key '{}': arrays nest deeper than {}", key, Limits{}.max_array_depth);
      }
      const Array& array = **a;
      if (uint32_t(array.type) > uint32_t(ValueType::f64)) {
        fail(ErrorKind::invalid_argument, "key '{}': unknown array element type {}", key, uint32_t(array.type));
      }
      out.put(uint32_t(array.type));
      out.put(uint64_t(array.items.size()));
      for (const Value& item : array.items) {
        if (item.type != array.type) {
          fail(ErrorKind::invalid_argument, "key '{}': expected array items of type {}, found an item of type {}", key,
               value_type_name(array.type), value_type_name(item.type));
        }
        encode_payload(out, item, key, depth + 1);
      }
      return;
    }
  }
  fail(ErrorKind::invalid_argument, "key '{}': unknown value type {}", key, uint32_t(v.type));
}

void encode_value(Buffer& out, const Value& v, std::string_view key, uint32_t depth) {
  out.put(uint32_t(v.type));
  encode_payload(out, v, key, depth);
}

class OutputFile {
 public:
  explicit OutputFile(std::string path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "wb");
    if (file_ == nullptr) fail(ErrorKind::io, "cannot create '{}': {}", path_, std::strerror(errno));
  }
  ~OutputFile() {
    if (file_ != nullptr) {
      std::fclose(file_);
      std::remove(path_.c_str());
    }
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, size_t n) {
    if (n > 0 && std::fwrite(data, 1, n, file_) != n) fail(ErrorKind::io, "cannot write '{}': {}", path_, std::strerror(errno));
    written_ += n;
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t zeros[256] = {};
    uint64_t pad = (alignment - written_ % alignment) % alignment;
    while (pad > 0) {
      const size_t n = size_t(std::min<uint64_t>(pad, sizeof zeros));
      write(zeros, n);
      pad -= n;
    }
  }
  // Closes and renames into `target`; on any failure the temporary file is removed.
  void commit(const std::string& target) {
    FILE* f = std::exchange(file_, nullptr);
    if (std::fflush(f) != 0 || std::fclose(f) != 0) {
      const int err = errno;
      std::remove(path_.c_str());
      fail(ErrorKind::io, "cannot write '{}': {}", path_, std::strerror(err));
    }
    if (std::rename(path_.c_str(), target.c_str()) != 0) {
      const int err = errno;
      std::remove(path_.c_str());
      fail(ErrorKind::io, "cannot rename '{}' to '{}': {}", path_, target, std::strerror(err));
    }
  }

 private:
  std::string path_;
  FILE* file_ = nullptr;
  uint64_t written_ = 0;
};

}  // namespace

Writer::Writer(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || !std::has_single_bit(alignment) || alignment > (uint64_t(1) << 31)) {
    fail(ErrorKind::invalid_argument, "expected a GGUF alignment that is a power of two up to 2^31, found {}", alignment);
  }
}

void Writer::set(std::string key, Value value) {
  Buffer scratch;
  encode_value(scratch, value, key, 0);  // validates types and ranges now, not at write time
  if (key == "general.alignment") {
    if (value.type != ValueType::u32 || checked_integer<uint32_t>(value, key) != alignment_) {
      fail(ErrorKind::invalid_argument, "key 'general.alignment': expected the u32 {} given to the writer, found {} {}",
           alignment_, value_type_name(value.type), value.to_display());
    }
  }
  for (auto& [existing, v] : metadata_) {
    if (existing == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void Writer::add_tensor(std::string name, DType type, std::vector<uint64_t> dims, const void* data) {
  const std::optional<DTypeTraits> traits = dtype_traits(uint32_t(type));
  if (!traits) fail(ErrorKind::invalid_argument, "tensor '{}': unknown type number {}", name, uint32_t(type));
  if (name.size() > kMaxTensorNameBytes) {
    fail(ErrorKind::invalid_argument, "tensor '{}': expected a name of at most {} bytes, found {}", name, kMaxTensorNameBytes,
         name.size());
  }
  if (dims.size() > kMaxDims) {
    fail(ErrorKind::invalid_argument, "tensor '{}': expected at most {} dimensions, found {}", name, kMaxDims, dims.size());
  }
  for (const PendingTensor& t : tensors_) {
    if (t.info.name == name) fail(ErrorKind::invalid_argument, "tensor '{}' is added twice", name);
  }
  const uint64_t row = dims.empty() ? 1 : dims[0];
  if (row % traits->block_size != 0) {
    fail(ErrorKind::invalid_argument, "tensor '{}': expected a row length that is a multiple of {} (the block size of {}), found {}",
         name, traits->block_size, traits->name, row);
  }
  PendingTensor pending{TensorInfo{std::move(name), std::move(dims), type, 0}, data};
  const uint64_t n_bytes = pending.info.n_bytes();
  if (data == nullptr && n_bytes > 0) fail(ErrorKind::invalid_argument, "tensor '{}': no data", pending.info.name);
  uint64_t offset = 0;
  if (!tensors_.empty()) {
    const TensorInfo& last = tensors_.back().info;
    offset = last.offset + last.n_bytes();
    offset += (alignment_ - offset % alignment_) % alignment_;
  }
  pending.info.offset = offset;
  tensors_.push_back(std::move(pending));
}

void Writer::write(const std::string& path) const {
  Buffer head;
  head.put(uint32_t(0x46554747));  // "GGUF"
  head.put(uint32_t(3));
  head.put(uint64_t(tensors_.size()));
  const bool add_alignment =
      alignment_ != kDefaultAlignment &&
      std::none_of(metadata_.begin(), metadata_.end(), [](const auto& kv) { return kv.first == "general.alignment"; });
  head.put(uint64_t(metadata_.size() + (add_alignment ? 1 : 0)));
  for (const auto& [key, value] : metadata_) {
    head.put_string(key);
    encode_value(head, value, key, 0);
  }
  if (add_alignment) {
    head.put_string("general.alignment");
    encode_value(head, Value::of_u32(uint32_t(alignment_)), "general.alignment", 0);
  }
  for (const PendingTensor& t : tensors_) {
    head.put_string(t.info.name);
    head.put(uint32_t(t.info.dims.size()));
    for (uint64_t d : t.info.dims) head.put(d);
    head.put(uint32_t(t.info.type));
    head.put(t.info.offset);
  }
  head.pad_to(alignment_);

  OutputFile out(path + ".tmp");
  out.write(head.bytes().data(), head.bytes().size());
  for (const PendingTensor& t : tensors_) {
    out.write(t.data, size_t(t.info.n_bytes()));
    out.pad_to(alignment_);
  }
  out.commit(path);
}

}  // namespace slm::gguf
