#include "slm/tokenizer/jinja_value.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm::jinja {

namespace {

// Nesting deeper than this (a list inside a list ... ) is refused, as Python's recursion limit does.
constexpr int kMaxDepth = 512;

void check_depth(int depth) {
  if (depth > kMaxDepth) fail(ErrorKind::out_of_range, "values nested deeper than {} levels", kMaxDepth);
}

bool is_printable(char32_t c) {
  if (c == ' ') return true;
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
  }
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : decode_utf8(s)) {
    if (c == char32_t(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(char(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_printable(c)) {
      utf8::append(out, uint32_t(c));
    } else if (c < 0x100) {
      out += fmt::format("\\x{:02x}", uint32_t(c));
    } else if (c < 0x10000) {
      out += fmt::format("\\u{:04x}", uint32_t(c));
    } else {
      out += fmt::format("\\U{:08x}", uint32_t(c));
    }
  }
  out.push_back(quote);
  return out;
}

std::string str_impl(const Value& v, bool as_repr, int depth);

std::string join_repr(const std::vector<Value>& items, int depth) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    if (k > 0) out += ", ";
    out += str_impl(items[k], true, depth + 1);
  }
  return out;
}

std::string dict_repr(const DictData& d, int depth) {
  std::string out = "{";
  for (size_t k = 0; k < d.items.size(); ++k) {
    if (k > 0) out += ", ";
    out += str_impl(d.items[k].first, true, depth + 1);
    out += ": ";
    out += str_impl(d.items[k].second, true, depth + 1);
  }
  return out + "}";
}

std::string str_impl(const Value& v, bool as_repr, int depth) {
  check_depth(depth);
  switch (v.kind) {
    case Kind::undefined: return as_repr ? "Undefined" : "";
    case Kind::none: return "None";
    case Kind::boolean: return v.b ? "True" : "False";
    case Kind::integer: return std::to_string(v.i);
    case Kind::floating: return float_repr(v.f);
    case Kind::string: return as_repr ? string_repr(*v.str) : *v.str;
    case Kind::list: return "[" + join_repr(*v.list, depth) + "]";
    case Kind::tuple: return "(" + join_repr(*v.list, depth) + (v.list->size() == 1 ? ",)" : ")");
    case Kind::dict: return dict_repr(*v.dict, depth);
    case Kind::ns: return "<Namespace " + dict_repr(*v.dict, depth) + ">";
    case Kind::callable: return v.fn->repr();
  }
  return "";
}

bool equals_impl(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::undefined:
    case Kind::none: return true;
    case Kind::string: return *a.str == *b.str;
    case Kind::list:
    case Kind::tuple: {
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) {
        if (!equals_impl((*a.list)[k], (*b.list)[k], depth + 1)) return false;
      }
      return true;
    }
    case Kind::dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [key, value] : a.dict->items) {
        const Value* other = b.dict->find(key);
        if (other == nullptr || !equals_impl(value, *other, depth + 1)) return false;
      }
      return true;
    }
    case Kind::ns: return a.dict == b.dict;
    case Kind::callable: return a.fn == b.fn;
    default: return false;
  }
}

bool less_impl(const Value& a, const Value& b, std::string_view op, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return *a.str < *b.str;  // UTF-8 byte order is code point order
  if (a.kind == b.kind && a.is_sequence()) {
    const auto& x = *a.list;
    const auto& y = *b.list;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (!equals_impl(x[k], y[k], depth + 1)) return less_impl(x[k], y[k], op, depth + 1);
    }
    return x.size() < y.size();
  }
  fail(ErrorKind::invalid_argument, "'{}' not supported between instances of '{}' and '{}'", op, type_name(a),
       type_name(b));
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : decode_utf8(s)) {
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
      if (c >= 0x10000) {
        const uint32_t v = uint32_t(c) - 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", uint32_t(c));
      }
    } else {
      utf8::append(out, uint32_t(c));
    }
  }
  out.push_back('"');
}

std::string json_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return float_repr(v);
}

std::string json_key(const Value& key) {
  switch (key.kind) {
    case Kind::string: return *key.str;
    case Kind::integer: return std::to_string(key.i);
    case Kind::floating: return json_float(key.f);
    case Kind::boolean: return key.b ? "true" : "false";
    case Kind::none: return "null";
    default:
      fail(ErrorKind::invalid_argument, "keys must be str, int, float, bool or None, not {}", type_name(key));
  }
}

void json_impl(std::string& out, const Value& v, const JsonOptions& o, int level) {
  check_depth(level);
  auto newline = [&](int at) {
    out.push_back('\n');
    for (int k = 0; k < at; ++k) out += o.indent;
  };
  switch (v.kind) {
    case Kind::none: out += "null"; return;
    case Kind::boolean: out += v.b ? "true" : "false"; return;
    case Kind::integer: out += std::to_string(v.i); return;
    case Kind::floating: out += json_float(v.f); return;
    case Kind::string: json_string(out, *v.str, o.ensure_ascii); return;
    case Kind::list:
    case Kind::tuple: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k > 0) out += o.item_separator;
        if (o.has_indent) newline(level + 1);
        json_impl(out, (*v.list)[k], o, level + 1);
      }
      if (o.has_indent) newline(level);
      out.push_back(']');
      return;
    }
    case Kind::dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& entry : v.dict->items) entries.push_back(&entry);
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* x, const auto* y) { return less(x->first, y->first); });
      }
      out.push_back('{');
      for (size_t k = 0; k < entries.size(); ++k) {
        if (k > 0) out += o.item_separator;
        if (o.has_indent) newline(level + 1);
        json_string(out, json_key(entries[k]->first), o.ensure_ascii);
        out += o.key_separator;
        json_impl(out, entries[k]->second, o, level + 1);
      }
      if (o.has_indent) newline(level);
      out.push_back('}');
      return;
    }
    case Kind::undefined:
      fail(ErrorKind::invalid_argument, "Object of type Undefined is not JSON serializable");
    case Kind::ns:
      fail(ErrorKind::invalid_argument, "Object of type Namespace is not JSON serializable");
    case Kind::callable:
      fail(ErrorKind::invalid_argument, "Object of type function is not JSON serializable");
  }
}

Value from_json_impl(const nlohmann::ordered_json& j, int depth) {
  check_depth(depth);
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= uint64_t(INT64_MAX)) return Value::integer(int64_t(u));
      return Value::floating(double(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_impl(e, depth + 1));
      return Value::list_of(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      DictData d;
      d.items.reserve(j.size());
      for (const auto& [key, value] : j.items()) d.items.emplace_back(Value::string(key), from_json_impl(value, depth + 1));
      return Value::dict_of(std::move(d));
    }
    default: return Value::none();
  }
}

}  // namespace

const Value* DictData::find(const Value& key) const {
  for (const auto& entry : items) {
    if (equals(entry.first, key)) return &entry.second;
  }
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& entry : items) {
    if (entry.first.is_string() && *entry.first.str == key) return &entry.second;
  }
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& entry : items) {
    if (equals(entry.first, key)) {
      entry.second = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

const Value* Args::get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  return get_keyword(name);
}

const Value* Args::get_keyword(std::string_view name) const {
  for (const auto& [key, value] : keyword) {
    if (key == name) return &value;
  }
  return nullptr;
}

void Args::check(std::string_view function, size_t max_positional, std::initializer_list<std::string_view> names) const {
  if (positional.size() > max_positional) {
    fail(ErrorKind::invalid_argument, "{}() takes at most {} positional arguments ({} given)", function, max_positional,
         positional.size());
  }
  for (const auto& [key, value] : keyword) {
    if (std::find(names.begin(), names.end(), key) == names.end()) {
      fail(ErrorKind::invalid_argument, "{}() got an unexpected keyword argument '{}'", function, key);
    }
  }
}

Value Value::undefined(std::string message) {
  Value v;
  v.str = std::make_shared<const std::string>(std::move(message));
  return v;
}

Value Value::none() {
  Value v;
  v.kind = Kind::none;
  return v;
}

Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::boolean;
  v.b = x;
  return v;
}

Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::integer;
  v.i = x;
  return v;
}

Value Value::floating(double x) {
  Value v;
  v.kind = Kind::floating;
  v.f = x;
  return v;
}

Value Value::string(std::string x) {
  Value v;
  v.kind = Kind::string;
  v.str = std::make_shared<const std::string>(std::move(x));
  return v;
}

Value Value::list_of(std::vector<Value> items) {
  Value v;
  v.kind = Kind::list;
  v.list = std::make_shared<const std::vector<Value>>(std::move(items));
  return v;
}

Value Value::tuple_of(std::vector<Value> items) {
  Value v = list_of(std::move(items));
  v.kind = Kind::tuple;
  return v;
}

Value Value::dict_of(DictData data) {
  Value v;
  v.kind = Kind::dict;
  v.dict = std::make_shared<DictData>(std::move(data));
  return v;
}

Value Value::ns_of(DictData data) {
  Value v = dict_of(std::move(data));
  v.kind = Kind::ns;
  return v;
}

Value Value::function(std::shared_ptr<const Callable> callable) {
  Value v;
  v.kind = Kind::callable;
  v.fn = std::move(callable);
  return v;
}

double Value::as_double() const {
  switch (kind) {
    case Kind::boolean: return b ? 1.0 : 0.0;
    case Kind::integer: return double(i);
    default: return f;
  }
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::list: return "list";
    case Kind::tuple: return "tuple";
    case Kind::dict: return "dict";
    case Kind::ns: return "Namespace";
    case Kind::callable: return "function";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return v.b;
    case Kind::integer: return v.i != 0;
    case Kind::floating: return v.f != 0.0;
    case Kind::string: return !v.str->empty();
    case Kind::list:
    case Kind::tuple: return !v.list->empty();
    case Kind::dict: return !v.dict->items.empty();
    case Kind::ns:
    case Kind::callable: return true;
  }
  return false;
}

bool equals(const Value& a, const Value& b) { return equals_impl(a, b, 0); }

bool less(const Value& a, const Value& b, std::string_view op) { return less_impl(a, b, op, 0); }

std::string to_str(const Value& v) { return str_impl(v, false, 0); }

std::string repr(const Value& v) { return str_impl(v, true, 0); }

std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0.0) return std::signbit(v) ? "-0.0" : "0.0";
  // The shortest digits that read back as the same double, as Python's repr chooses them.
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*e", precision - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text(buf);
  const bool negative = text[0] == '-';
  if (negative) text.erase(0, 1);
  const size_t e = text.find('e');
  const int exponent = std::atoi(text.c_str() + e + 1);
  std::string digits;
  for (size_t k = 0; k < e; ++k) {
    if (text[k] != '.') digits.push_back(text[k]);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out;
  }
  const int point = exponent + 1;  // digits before the decimal point
  if (point <= 0) {
    out += "0." + std::string(size_t(-point), '0') + digits;
  } else if (size_t(point) >= digits.size()) {
    out += digits + std::string(size_t(point) - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, size_t(point)) + "." + digits.substr(size_t(point));
  }
  return out;
}

void fail_undefined(const Value& v) {
  fail(ErrorKind::invalid_argument, "{}", v.str ? *v.str : std::string("value is undefined"));
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_impl(j, 0); }

std::string to_json_text(const Value& v, const JsonOptions& options) {
  std::string out;
  json_impl(out, v, options, 0);
  return out;
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const auto byte = uint8_t(text[pos]);
    if (byte < 0x80) {
      out.push_back(byte);
      ++pos;
      continue;
    }
    size_t length = 1;
    const int32_t cp = utf8::decode(text.substr(pos), length);
    out.push_back(cp < 0 ? U'\uFFFD' : char32_t(cp));
    pos += length;
  }
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) utf8::append(out, uint32_t(c));
  return out;
}

size_t count_code_points(std::string_view text) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto byte = uint8_t(text[pos]);
    if (byte < 0x80) {
      ++pos;
    } else {
      size_t length = 1;
      utf8::decode(text.substr(pos), length);
      pos += length;
    }
    ++n;
  }
  return n;
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace slm::jinja
