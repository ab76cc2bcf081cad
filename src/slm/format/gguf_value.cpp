// GGUF metadata values: constructors, checked accessors, display form, tensor sizes.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "slm/format/gguf.hpp"
#include "slm/util/error.hpp"

namespace slm::gguf {
namespace {

bool is_unsigned_type(ValueType t) {
  return t == ValueType::u8 || t == ValueType::u16 || t == ValueType::u32 || t == ValueType::u64;
}

bool is_signed_type(ValueType t) {
  return t == ValueType::i8 || t == ValueType::i16 || t == ValueType::i32 || t == ValueType::i64;
}

Value make(ValueType type, decltype(Value::data) data) {
  Value v;
  v.type = type;
  v.data = std::move(data);
  return v;
}

[[noreturn]] void wrong_type(const Value& v, std::string_view wanted) {
  fail(ErrorKind::format, "expected a GGUF value of type {}, found {}", wanted, value_type_name(v.type));
}

const Array& array_of(const Value& v, std::string_view wanted) {
  if (v.type != ValueType::array) wrong_type(v, wanted);
  const auto* array = std::get_if<std::shared_ptr<Array>>(&v.data);
  if (array == nullptr || *array == nullptr) fail(ErrorKind::internal, "GGUF array value without items");
  return **array;
}

std::string quoted(const std::string& s, size_t max_chars) {
  std::string out = "\"";
  size_t shown = 0;
  for (char c : s) {
    if (shown == max_chars) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
    ++shown;
  }
  out += '"';
  return out;
}

}  // namespace

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::u8: return "u8";
    case ValueType::i8: return "i8";
    case ValueType::u16: return "u16";
    case ValueType::i16: return "i16";
    case ValueType::u32: return "u32";
    case ValueType::i32: return "i32";
    case ValueType::f32: return "f32";
    case ValueType::boolean: return "bool";
    case ValueType::string: return "string";
    case ValueType::array: return "array";
    case ValueType::u64: return "u64";
    case ValueType::i64: return "i64";
    case ValueType::f64: return "f64";
  }
  return "unknown";
}

Value Value::of_u8(uint8_t v) { return make(ValueType::u8, uint64_t(v)); }
Value Value::of_i8(int8_t v) { return make(ValueType::i8, int64_t(v)); }
Value Value::of_u16(uint16_t v) { return make(ValueType::u16, uint64_t(v)); }
Value Value::of_i16(int16_t v) { return make(ValueType::i16, int64_t(v)); }
Value Value::of_u32(uint32_t v) { return make(ValueType::u32, uint64_t(v)); }
Value Value::of_i32(int32_t v) { return make(ValueType::i32, int64_t(v)); }
Value Value::of_u64(uint64_t v) { return make(ValueType::u64, v); }
Value Value::of_i64(int64_t v) { return make(ValueType::i64, v); }
Value Value::of_f32(float v) { return make(ValueType::f32, double(v)); }
Value Value::of_f64(double v) { return make(ValueType::f64, v); }
Value Value::of_bool(bool v) { return make(ValueType::boolean, v); }
Value Value::of_string(std::string v) { return make(ValueType::string, std::move(v)); }

Value Value::of_array(ValueType element_type, std::vector<Value> items) {
  auto array = std::make_shared<Array>();
  array->type = element_type;
  array->items = std::move(items);
  return make(ValueType::array, std::move(array));
}

Value Value::of_strings(const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const std::string& s : v) items.push_back(of_string(s));
  return of_array(ValueType::string, std::move(items));
}

Value Value::of_i32s(const std::vector<int32_t>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(of_i32(x));
  return of_array(ValueType::i32, std::move(items));
}

Value Value::of_f32s(const std::vector<float>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(of_f32(x));
  return of_array(ValueType::f32, std::move(items));
}

bool Value::is_integer() const { return is_unsigned_type(type) || is_signed_type(type); }

bool Value::is_float() const { return type == ValueType::f32 || type == ValueType::f64; }

int64_t Value::as_int() const {
  if (!is_integer()) wrong_type(*this, "integer");
  if (const auto* u = std::get_if<uint64_t>(&data)) {
    if (*u > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail(ErrorKind::out_of_range, "expected an integer up to {}, found {}", std::numeric_limits<int64_t>::max(), *u);
    }
    return int64_t(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&data)) return *i;
  fail(ErrorKind::internal, "GGUF {} value without an integer", value_type_name(type));
}

double Value::as_float() const {
  if (is_float()) {
    if (const auto* d = std::get_if<double>(&data)) return *d;
    fail(ErrorKind::internal, "GGUF {} value without a number", value_type_name(type));
  }
  if (!is_integer()) wrong_type(*this, "number");
  if (const auto* u = std::get_if<uint64_t>(&data)) return double(*u);
  if (const auto* i = std::get_if<int64_t>(&data)) return double(*i);
  fail(ErrorKind::internal, "GGUF {} value without an integer", value_type_name(type));
}

bool Value::as_bool() const {
  if (type != ValueType::boolean) wrong_type(*this, "bool");
  if (const auto* b = std::get_if<bool>(&data)) return *b;
  fail(ErrorKind::internal, "GGUF bool value without a bool");
}

const std::string& Value::as_string() const {
  if (type != ValueType::string) wrong_type(*this, "string");
  if (const auto* s = std::get_if<std::string>(&data)) return *s;
  fail(ErrorKind::internal, "GGUF string value without a string");
}

const Array& Value::as_array() const { return array_of(*this, "array"); }

std::vector<std::string> Value::as_strings() const {
  const Array& array = array_of(*this, "array of strings");
  if (array.type != ValueType::string) {
    fail(ErrorKind::format, "expected an array of strings, found an array of {}", value_type_name(array.type));
  }
  std::vector<std::string> out;
  out.reserve(array.items.size());
  for (const Value& item : array.items) out.push_back(item.as_string());
  return out;
}

std::vector<int64_t> Value::as_ints() const {
  const Array& array = array_of(*this, "array of integers");
  if (!is_unsigned_type(array.type) && !is_signed_type(array.type)) {
    fail(ErrorKind::format, "expected an array of integers, found an array of {}", value_type_name(array.type));
  }
  std::vector<int64_t> out;
  out.reserve(array.items.size());
  for (const Value& item : array.items) out.push_back(item.as_int());
  return out;
}

std::vector<float> Value::as_floats() const {
  const Array& array = array_of(*this, "array of numbers");
  if (!is_unsigned_type(array.type) && !is_signed_type(array.type) && array.type != ValueType::f32 &&
      array.type != ValueType::f64) {
    fail(ErrorKind::format, "expected an array of numbers, found an array of {}", value_type_name(array.type));
  }
  std::vector<float> out;
  out.reserve(array.items.size());
  for (const Value& item : array.items) out.push_back(float(item.as_float()));
  return out;
}

std::string Value::to_display(size_t max_items) const {
  switch (type) {
    case ValueType::string: return quoted(as_string(), 60);
    case ValueType::boolean: return as_bool() ? "true" : "false";
    case ValueType::f32: return fmt::format("{}", float(as_float()));
    case ValueType::f64: return fmt::format("{}", as_float());
    case ValueType::array: {
      const Array& array = as_array();
      std::string out = "[";
      const size_t shown = std::min(max_items, array.items.size());
      for (size_t i = 0; i < shown; ++i) {
        if (i > 0) out += ", ";
        out += array.items[i].to_display(max_items);
      }
      if (shown < array.items.size()) {
        out += fmt::format("{}... {} more", shown > 0 ? ", " : "", array.items.size() - shown);
      }
      out += fmt::format("] ({} {})", value_type_name(array.type), array.items.size());
      return out;
    }
    default:
      if (const auto* u = std::get_if<uint64_t>(&data)) return fmt::format("{}", *u);
      if (const auto* i = std::get_if<int64_t>(&data)) return fmt::format("{}", *i);
      return "?";
  }
}

bool Value::operator==(const Value& other) const {
  if (type != other.type) return false;
  if (type == ValueType::array) {
    const Array& a = as_array();
    const Array& b = other.as_array();
    return a.type == b.type && a.items == b.items;
  }
  if (is_integer()) {
    // Either representation of an integer compares by value.
    const bool neg_a = std::holds_alternative<int64_t>(data) && std::get<int64_t>(data) < 0;
    const bool neg_b = std::holds_alternative<int64_t>(other.data) && std::get<int64_t>(other.data) < 0;
    if (neg_a != neg_b) return false;
    auto magnitude = [](const Value& v) -> uint64_t {
      if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
      if (const auto* i = std::get_if<int64_t>(&v.data)) return uint64_t(*i);
      return 0;
    };
    return magnitude(*this) == magnitude(other);
  }
  if (is_float()) {
    const double a = as_float();
    const double b = other.as_float();
    return a == b || (std::isnan(a) && std::isnan(b));
  }
  return data == other.data;
}

uint64_t TensorInfo::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) {
    if (__builtin_mul_overflow(n, d, &n)) {
      fail(ErrorKind::out_of_range, "tensor '{}': element count overflows 64 bits", name);
    }
  }
  return n;
}

uint64_t TensorInfo::n_bytes() const {
  const uint64_t row = dtype_row_bytes(type, dims.empty() ? 1 : dims[0]);
  uint64_t n = row;
  for (size_t i = 1; i < dims.size(); ++i) {
    if (__builtin_mul_overflow(n, dims[i], &n)) {
      fail(ErrorKind::out_of_range, "tensor '{}': byte size overflows 64 bits", name);
    }
  }
  return n;
}

}  // namespace slm::gguf
