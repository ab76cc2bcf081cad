#include "slm/util/npy.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "slm/util/error.hpp"
#include "slm/util/mmap.hpp"

namespace slm {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
constexpr size_t kHeaderAlignment = 64;

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

uint64_t element_count(const std::vector<uint64_t>& shape, const std::string& source) {
  uint64_t n = 1;
  for (uint64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) fail(ErrorKind::format, "{}: shape {} overflows 64 bits", source, shape_text(shape));
  }
  return n;
}

void write_npy(const std::string& path, const char* descr, const void* data, size_t item_bytes,
               const std::vector<uint64_t>& shape) {
  const uint64_t count = element_count(shape, path);
  uint64_t n_bytes = 0;
  if (__builtin_mul_overflow(count, uint64_t(item_bytes), &n_bytes)) {
    fail(ErrorKind::invalid_argument, "{}: shape {} is too large", path, shape_text(shape));
  }
  if (data == nullptr && n_bytes > 0) fail(ErrorKind::invalid_argument, "{}: no data for shape {}", path, shape_text(shape));
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape_text(shape));
  const size_t prefix = kMagicBytes + 2 + 2;
  const size_t total = (prefix + header.size() + 1 + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  if (header.size() > 0xffff) fail(ErrorKind::invalid_argument, "{}: the header for shape {} is too long", path, shape_text(shape));

  std::string head(kMagic, kMagicBytes);
  head += char(1);
  head += char(0);
  head += char(header.size() & 0xff);
  head += char(header.size() >> 8);
  head += header;

  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail(ErrorKind::io, "cannot create '{}': {}", path, std::strerror(errno));
  bool ok = std::fwrite(head.data(), 1, head.size(), f) == head.size();
  if (ok && n_bytes > 0) ok = std::fwrite(data, 1, size_t(n_bytes), f) == n_bytes;
  const int err = errno;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) {
    std::remove(path.c_str());
    fail(ErrorKind::io, "cannot write '{}': {}", path, std::strerror(err));
  }
}

// A small parser for the Python dict literal numpy writes as the header.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) error(fmt::format("'{}'", c));
  }
  [[noreturn]] void error(std::string_view expected) const {
    const std::string found = pos_ < text_.size() ? fmt::format("'{}'", text_.substr(pos_, 12)) : std::string("the end");
    fail(ErrorKind::format, "{}: header: expected {} at character {}, found {}", source_, expected, pos_, found);
  }
  std::string string_literal() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) error("a quoted string");
    const char quote = text_[pos_++];
    const size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) error("the end of a quoted string");
    std::string s(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  bool boolean() {
    skip_space();
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    error("True or False");
  }
  uint64_t integer() {
    skip_space();
    const size_t start = pos_;
    uint64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (__builtin_mul_overflow(v, uint64_t(10), &v) || __builtin_add_overflow(v, uint64_t(text_[pos_] - '0'), &v)) {
        fail(ErrorKind::format, "{}: header: dimension at character {} overflows 64 bits", source_, start);
      }
      ++pos_;
    }
    if (pos_ == start) error("a non-negative integer");
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long suffix
    return v;
  }
  std::vector<uint64_t> tuple() {
    expect('(');
    std::vector<uint64_t> dims;
    if (accept(')')) return dims;
    while (true) {
      dims.push_back(integer());
      if (dims.size() > 64) fail(ErrorKind::format, "{}: header: expected at most 64 dimensions", source_);
      if (accept(')')) return dims;
      expect(',');
      if (accept(')')) return dims;
    }
  }
  bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }

 private:
  std::string_view text_;
  const std::string& source_;
  size_t pos_ = 0;
};

template <typename From, typename To>
void convert(const uint8_t* src, uint64_t count, std::vector<To>& out, const std::string& source) {
  out.resize(size_t(count));
  for (uint64_t i = 0; i < count; ++i) {
    From v;
    std::memcpy(&v, src + i * sizeof(From), sizeof(From));
    if constexpr (std::is_integral_v<From> && sizeof(From) > sizeof(To)) {
      if (v < From(std::numeric_limits<To>::min()) || v > From(std::numeric_limits<To>::max())) {
        fail(ErrorKind::out_of_range, "{}: element {} is {}, outside the int32 range", source, i, v);
      }
    }
    out[size_t(i)] = To(v);
  }
}

}  // namespace

uint64_t NpyArray::n_elements() const { return element_count(shape, "npy array"); }

void npy_write_f32(const std::string& path, const float* data, const std::vector<uint64_t>& shape) {
  write_npy(path, "<f4", data, sizeof(float), shape);
}

void npy_write_i32(const std::string& path, const int32_t* data, const std::vector<uint64_t>& shape) {
  write_npy(path, "<i4", data, sizeof(int32_t), shape);
}

NpyArray npy_read(const std::string& path) {
  const MappedFile file(path);
  return npy_parse(file.data(), file.size(), path);
}

NpyArray npy_parse(const uint8_t* bytes, size_t size, const std::string& source) {
  if (size < kMagicBytes + 2 || std::memcmp(bytes, kMagic, kMagicBytes) != 0) {
    fail(ErrorKind::format, "{}: expected the magic '\\x93NUMPY' at byte offset 0, found a file of {} bytes without it", source,
         size);
  }
  const uint8_t major = bytes[6];
  const uint8_t minor = bytes[7];
  size_t header_at = 0;
  uint64_t header_bytes = 0;
  if (major == 1) {
    if (size < 10) fail(ErrorKind::format, "{}: expected a 2-byte header length at byte offset 8, found the end", source);
    header_bytes = uint64_t(bytes[8]) | uint64_t(bytes[9]) << 8;
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) fail(ErrorKind::format, "{}: expected a 4-byte header length at byte offset 8, found the end", source);
    header_bytes = uint64_t(bytes[8]) | uint64_t(bytes[9]) << 8 | uint64_t(bytes[10]) << 16 | uint64_t(bytes[11]) << 24;
    header_at = 12;
  } else {
    fail(ErrorKind::unsupported, "{}: expected .npy format version 1, 2 or 3, found {}.{}", source, major, minor);
  }
  if (header_bytes > size - header_at) {
    fail(ErrorKind::format, "{}: expected a header of {} bytes at byte offset {}, found {} bytes before the end", source,
         header_bytes, header_at, size - header_at);
  }

  HeaderParser parser(std::string_view(reinterpret_cast<const char*>(bytes + header_at), size_t(header_bytes)), source);
  NpyArray array;
  bool have_descr = false;
  bool have_order = false;
  bool have_shape = false;
  bool fortran_order = false;
  parser.expect('{');
  while (!parser.accept('}')) {
    const std::string key = parser.string_literal();
    parser.expect(':');
    if (key == "descr" && !have_descr) {
      array.dtype = parser.string_literal();
      have_descr = true;
    } else if (key == "fortran_order" && !have_order) {
      fortran_order = parser.boolean();
      have_order = true;
    } else if (key == "shape" && !have_shape) {
      array.shape = parser.tuple();
      have_shape = true;
    } else {
      fail(ErrorKind::format, "{}: header: expected the keys descr, fortran_order and shape once each, found '{}'", source, key);
    }
    if (!parser.accept(',')) {
      parser.expect('}');
      break;
    }
  }
  if (!parser.at_end()) parser.error("the end of the header after '}'");
  if (!have_descr || !have_order || !have_shape) {
    fail(ErrorKind::format, "{}: header: expected the keys descr, fortran_order and shape, found only {}{}{}", source,
         have_descr ? "descr " : "", have_order ? "fortran_order " : "", have_shape ? "shape" : "");
  }
  if (fortran_order) fail(ErrorKind::unsupported, "{}: Fortran-order arrays are not supported (expected fortran_order False)", source);
  size_t item_bytes = 0;
  if (array.dtype == "<f4" || array.dtype == "<i4") {
    item_bytes = 4;
  } else if (array.dtype == "<f8" || array.dtype == "<i8") {
    item_bytes = 8;
  } else if (!array.dtype.empty() && array.dtype[0] == '>') {
    fail(ErrorKind::unsupported, "{}: big-endian dtype '{}' is not supported (expected '<f4', '<i4', '<f8' or '<i8')", source,
         array.dtype);
  } else {
    fail(ErrorKind::unsupported, "{}: dtype '{}' is not supported (expected '<f4', '<i4', '<f8' or '<i8')", source, array.dtype);
  }

  const uint64_t count = element_count(array.shape, source);
  const uint8_t* data = bytes + header_at + header_bytes;
  const uint64_t data_bytes = size - header_at - header_bytes;
  uint64_t expected = 0;
  if (__builtin_mul_overflow(count, uint64_t(item_bytes), &expected) || expected != data_bytes) {
    fail(ErrorKind::format, "{}: expected {} elements of {} ({} bytes) after the header, found {} bytes", source, count,
         array.dtype, count * item_bytes, data_bytes);
  }
  if (array.dtype == "<f4") convert<float>(data, count, array.f32, source);
  if (array.dtype == "<f8") convert<double>(data, count, array.f32, source);
  if (array.dtype == "<i4") convert<int32_t>(data, count, array.i32, source);
  if (array.dtype == "<i8") convert<int64_t>(data, count, array.i32, source);
  return array;
}

}  // namespace slm
