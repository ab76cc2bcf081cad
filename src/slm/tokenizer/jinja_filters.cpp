// jinja2's built-in filters, as chat templates use them, plus transformers' tojson.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>
#include <utf8proc.h>

#include "slm/tokenizer/jinja_interpreter.hpp"
#include "slm/tokenizer/jinja_strings.hpp"

namespace slm::jinja {

namespace {

using Filter = Value (*)(Interpreter&, const Value&, const Args&);

const Value* arg(const Args& a, size_t index, std::string_view name) { return a.get(index, name); }

bool flag(const Args& a, size_t index, std::string_view name, bool fallback) {
  const Value* v = arg(a, index, name);
  return v ? truthy(*v) : fallback;
}

int64_t int_param(const Args& a, size_t index, std::string_view name, int64_t fallback) {
  const Value* v = arg(a, index, name);
  if (v == nullptr) return fallback;
  if (!v->is_integral()) fail(ErrorKind::invalid_argument, "'{}' must be an integer, not {}", name, type_name(*v));
  return v->as_int();
}

// What jinja2 compares by when case_sensitive is false.
Value ignore_case(const Value& v, bool case_sensitive) {
  if (case_sensitive || !v.is_string()) return v;
  return Value::string(py::lower(v.text()));
}

// jinja2's make_attrgetter: "a.b.0" looks up item a, then b, then 0; an Undefined on the way is
// replaced by `fallback` when one is given.
Value lookup_path(Interpreter& in, Value item, const Value& attribute, const Value* fallback = nullptr) {
  if (!attribute.is_string()) {
    item = in.get_item(item, attribute);
    return fallback != nullptr && item.is_undefined() ? *fallback : item;
  }
  const std::string& path = attribute.text();
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    Value key = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos && part.size() < 18
                    ? Value::integer(std::stoll(part))
                    : Value::string(part);
    item = in.get_item(item, key);
    if (fallback != nullptr && item.is_undefined()) item = *fallback;
    if (dot == std::string::npos) return item;
    pos = dot + 1;
  }
}

std::vector<Value> sorted(Interpreter& in, std::vector<Value> items, bool reverse, const std::function<Value(const Value&)>& key) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (auto& item : items) keyed.emplace_back(key(item), std::move(item));
  in.count(keyed.size() * 8);
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
    return reverse ? less(y.first, x.first) : less(x.first, y.first);
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& entry : keyed) out.push_back(std::move(entry.second));
  return out;
}

// ---- filters ----

Value f_abs(Interpreter&, const Value& v, const Args&) {
  if (v.kind == Kind::floating) return Value::floating(std::fabs(v.f));
  if (v.is_integral()) {
    if (v.as_int() == INT64_MIN) fail(ErrorKind::out_of_range, "integer overflow");
    return Value::integer(std::llabs(v.as_int()));
  }
  fail(ErrorKind::invalid_argument, "bad operand type for abs(): '{}'", type_name(v));
}

Value f_attr(Interpreter&, const Value& v, const Args& a) {
  const Value* name = arg(a, 0, "name");
  if (name == nullptr || !name->is_string()) fail(ErrorKind::invalid_argument, "attr() needs an attribute name");
  if (v.is_undefined()) fail_undefined(v);
  if (v.kind == Kind::ns) {
    if (const Value* x = v.dict->find(std::string_view(name->text()))) return *x;
  }
  bool found = false;
  Value method = get_method(v, name->text(), found);
  if (found) return method;
  return Value::undefined("'" + type_name(v) + " object' has no attribute '" + name->text() + "'");
}

Value f_batch(Interpreter& in, const Value& v, const Args& a) {
  const int64_t size = int_param(a, 0, "linecount", 0);
  if (size <= 0) fail(ErrorKind::invalid_argument, "batch() needs a positive line count");
  const Value* fill = arg(a, 1, "fill_with");
  std::vector<Value> out, tmp;
  for (auto& item : in.iterate(v)) {
    if (int64_t(tmp.size()) == size) {
      out.push_back(Value::list_of(std::move(tmp)));
      tmp.clear();
    }
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (fill != nullptr && !fill->is_none()) {
      while (int64_t(tmp.size()) < size) tmp.push_back(*fill);
    }
    out.push_back(Value::list_of(std::move(tmp)));
  }
  return Value::list_of(std::move(out));
}

Value f_capitalize(Interpreter&, const Value& v, const Args&) { return Value::string(py::capitalize(to_str(v))); }

Value f_center(Interpreter& in, const Value& v, const Args& a) {
  const int64_t width = int_param(a, 0, "width", 80);
  in.check_size(size_t(std::max<int64_t>(width, 0)));
  return Value::string(py::pad(to_str(v), width, " ", 0));
}

Value f_default(Interpreter&, const Value& v, const Args& a) {
  const Value* fallback = arg(a, 0, "default_value");
  const bool boolean = flag(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !truthy(v))) return fallback ? *fallback : Value::string("");
  return v;
}

Value f_dictsort(Interpreter& in, const Value& v, const Args& a) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.kind != Kind::dict) fail(ErrorKind::invalid_argument, "dictsort: expected a mapping, found {}", type_name(v));
  const bool case_sensitive = flag(a, 0, "case_sensitive", false);
  const Value* by = arg(a, 1, "by");
  const bool by_value = by != nullptr && by->is_string() && by->text() == "value";
  if (by != nullptr && !(by->is_string() && (by->text() == "key" || by->text() == "value"))) {
    fail(ErrorKind::invalid_argument, "You can only sort by either \"key\" or \"value\"");
  }
  std::vector<Value> items;
  for (const auto& [key, value] : v.dict->items) items.push_back(Value::tuple_of({key, value}));
  return Value::list_of(sorted(in, std::move(items), flag(a, 2, "reverse", false), [&](const Value& item) {
    return ignore_case(item.items()[by_value ? 1 : 0], case_sensitive);
  }));
}

Value f_escape(Interpreter&, const Value& v, const Args&) {
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return Value::string(std::move(out));
}

Value f_first(Interpreter& in, const Value& v, const Args&) {
  if (v.is_sequence()) {
    if (!v.items().empty()) return v.items().front();
  } else {
    std::vector<Value> items = in.iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Interpreter& in, const Value& v, const Args&) {
  if (v.is_sequence()) {
    if (!v.items().empty()) return v.items().back();
  } else {
    std::vector<Value> items = in.iterate(v);
    if (!items.empty()) return items.back();
  }
  return Value::undefined("No last item, sequence was empty.");
}

// Python's float(str): surrounding whitespace, underscores between digits, inf and nan.
bool parse_float(const std::string& text, double& out) {
  std::string s = py::strip(text, std::nullopt, true, true);
  std::string clean;
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '_') {
      if (k == 0 || k + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[k - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[k + 1]))) {
        return false;
      }
      continue;
    }
    clean.push_back(s[k]);
  }
  if (clean.empty()) return false;
  std::string lowered = py::lower(clean);
  const std::string body = lowered[0] == '+' || lowered[0] == '-' ? lowered.substr(1) : lowered;
  if (body == "inf" || body == "infinity" || body == "nan") {
    out = body == "nan" ? NAN : INFINITY;
    if (lowered[0] == '-') out = -out;
    return true;
  }
  if (body.empty() || (!std::isdigit(static_cast<unsigned char>(body[0])) && body[0] != '.')) return false;
  if (body.find_first_not_of("0123456789.e+-") != std::string::npos) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(clean.c_str(), &end);
  return end == clean.c_str() + clean.size();
}

Value f_float(Interpreter&, const Value& v, const Args& a) {
  if (v.is_undefined()) fail_undefined(v);
  const Value* fallback = arg(a, 0, "default");
  if (v.is_number()) return Value::floating(v.as_double());
  double x = 0;
  if (v.is_string() && parse_float(v.text(), x)) return Value::floating(x);
  return fallback ? *fallback : Value::floating(0.0);
}

Value f_int(Interpreter&, const Value& v, const Args& a) {
  if (v.is_undefined()) fail_undefined(v);
  const Value* fallback = arg(a, 0, "default");
  const int64_t base = int_param(a, 1, "base", 10);
  if (v.is_integral()) return Value::integer(v.as_int());
  if (v.kind == Kind::floating && std::isfinite(v.f) && std::fabs(v.f) < 9.2e18) return Value::integer(int64_t(std::trunc(v.f)));
  if (v.is_string()) {
    std::string s = py::strip(v.text(), std::nullopt, true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (!s.empty() && base >= 2 && base <= 36) {
      char* end = nullptr;
      errno = 0;
      const long long n = std::strtoll(s.c_str(), &end, int(base));
      if (errno == 0 && end == s.c_str() + s.size()) return Value::integer(n);
    }
    double x = 0;
    if (parse_float(v.text(), x) && std::isfinite(x) && std::fabs(x) < 9.2e18) return Value::integer(int64_t(std::trunc(x)));
  }
  return fallback ? *fallback : Value::integer(0);
}

Value f_indent(Interpreter& in, const Value& v, const Args& a) {
  if (v.is_undefined()) fail_undefined(v);  // jinja2 appends "\n" to the value first
  if (!v.is_string()) fail(ErrorKind::invalid_argument, "unsupported operand type(s) for +=: '{}' and 'str'", type_name(v));
  const Value* width = arg(a, 0, "width");
  std::string indention = "    ";
  if (width != nullptr) {
    if (width->is_undefined()) fail_undefined(*width);
    if (width->is_string()) {
      indention = width->text();
    } else {
      if (!width->is_integral()) {
        fail(ErrorKind::invalid_argument, "can't multiply sequence by non-int of type '{}'", type_name(*width));
      }
      const int64_t n = width->as_int();
      in.check_size(size_t(std::max<int64_t>(n, 0)));
      indention = std::string(size_t(std::max<int64_t>(n, 0)), ' ');
    }
  }
  const bool first = flag(a, 1, "first", false);
  const bool blank = flag(a, 2, "blank", false);
  const std::vector<std::string> lines = py::splitlines(to_str(v) + "\n", false);
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k > 0) {
      out += "\n";
      if (blank || !lines[k].empty()) out += indention;
    }
    out += lines[k];
    in.check_size(out.size());
  }
  if (first) out = indention + out;
  return Value::string(std::move(out));
}

Value f_items(Interpreter& in, const Value& v, const Args&) {
  if (v.is_undefined()) return Value::list_of({});
  if (v.kind != Kind::dict) fail(ErrorKind::invalid_argument, "Can only get item pairs from a mapping.");
  in.count(v.dict->items.size());
  std::vector<Value> out;
  for (const auto& [key, value] : v.dict->items) out.push_back(Value::tuple_of({key, value}));
  return Value::list_of(std::move(out));
}

Value f_join(Interpreter& in, const Value& v, const Args& a) {
  const Value* sep = arg(a, 0, "d");
  const Value* attribute = arg(a, 1, "attribute");
  const std::string separator = sep ? to_str(*sep) : "";
  std::string out;
  bool first = true;
  for (auto& item : in.iterate(v)) {
    if (!first) out += separator;
    first = false;
    out += to_str(attribute ? lookup_path(in, item, *attribute) : item);
    in.check_size(out.size());
  }
  return Value::string(std::move(out));
}

Value f_length(Interpreter&, const Value& v, const Args&) {
  switch (v.kind) {
    case Kind::undefined: return Value::integer(0);
    case Kind::string: return Value::integer(int64_t(count_code_points(v.text())));
    case Kind::list:
    case Kind::tuple: return Value::integer(int64_t(v.items().size()));
    case Kind::dict: return Value::integer(int64_t(v.dict->items.size()));
    default: fail(ErrorKind::invalid_argument, "object of type '{}' has no len()", type_name(v));
  }
}

Value f_list(Interpreter& in, const Value& v, const Args&) { return Value::list_of(in.iterate(v)); }
Value f_lower(Interpreter&, const Value& v, const Args&) { return Value::string(py::lower(to_str(v))); }
Value f_upper(Interpreter&, const Value& v, const Args&) { return Value::string(py::upper(to_str(v))); }

Value f_map(Interpreter& in, const Value& v, const Args& a) {
  std::vector<Value> out;
  if (!truthy(v)) return Value::list_of({});  // jinja2 checks its arguments only for a non-empty value
  if (a.positional.empty()) {
    const Value* attribute = a.get_keyword("attribute");
    if (attribute == nullptr) fail(ErrorKind::invalid_argument, "map() needs a filter name or attribute=");
    const Value* fallback = a.get_keyword("default");
    for (auto& item : in.iterate(v)) {
      out.push_back(lookup_path(in, item, *attribute, fallback));
    }
    return Value::list_of(std::move(out));
  }
  if (!a.positional[0].is_string()) fail(ErrorKind::invalid_argument, "map() needs a filter name");
  const std::string name = a.positional[0].text();
  Args rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (auto& item : in.iterate(v)) out.push_back(apply_filter(in, name, item, rest));
  return Value::list_of(std::move(out));
}

Value aggregate(Interpreter& in, const Value& v, const Args& a, bool want_max) {
  const bool case_sensitive = flag(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  const std::vector<Value> items = in.iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& item) { return ignore_case(attribute ? lookup_path(in, item, *attribute) : item, case_sensitive); };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t k = 1; k < items.size(); ++k) {
    Value candidate = key(items[k]);
    if (want_max ? less(best_key, candidate) : less(candidate, best_key)) {
      best = k;
      best_key = std::move(candidate);
    }
  }
  return items[best];
}

Value f_max(Interpreter& in, const Value& v, const Args& a) { return aggregate(in, v, a, true); }
Value f_min(Interpreter& in, const Value& v, const Args& a) { return aggregate(in, v, a, false); }

Value select_impl(Interpreter& in, const Value& v, const Args& a, bool by_attribute, bool keep) {
  const std::vector<Value> items = in.iterate(v);
  if (items.empty()) return Value::list_of({});  // jinja2 checks its arguments at the first item
  size_t next = 0;
  const Value* attribute = nullptr;
  if (by_attribute) {
    if (a.positional.empty()) fail(ErrorKind::invalid_argument, "selectattr/rejectattr need an attribute");
    attribute = &a.positional[next++];
  }
  std::string test_name;
  if (next < a.positional.size()) {
    if (!a.positional[next].is_string()) fail(ErrorKind::invalid_argument, "the test name must be a string");
    test_name = a.positional[next++].text();
  }
  Args test_args;
  test_args.positional.assign(a.positional.begin() + long(next), a.positional.end());
  test_args.keyword = a.keyword;
  std::vector<Value> out;
  for (const auto& item : items) {
    const Value subject = attribute ? lookup_path(in, item, *attribute) : item;
    const bool passed = test_name.empty() ? truthy(subject) : apply_test(in, test_name, subject, test_args);
    if (passed == keep) out.push_back(item);
  }
  return Value::list_of(std::move(out));
}

Value f_select(Interpreter& in, const Value& v, const Args& a) { return select_impl(in, v, a, false, true); }
Value f_reject(Interpreter& in, const Value& v, const Args& a) { return select_impl(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, const Args& a) { return select_impl(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, const Args& a) { return select_impl(in, v, a, true, false); }

Value f_replace(Interpreter& in, const Value& v, const Args& a) {
  const Value* old = arg(a, 0, "old");
  const Value* rep = arg(a, 1, "new");
  if (old == nullptr || rep == nullptr) fail(ErrorKind::invalid_argument, "replace() needs old and new");
  const Value* count = arg(a, 2, "count");
  const int64_t n = count == nullptr || count->is_none() ? -1 : count->is_integral() ? count->as_int() : -1;
  std::string out = py::replace(to_str(v), to_str(*old), to_str(*rep), n);
  in.check_size(out.size());
  return Value::string(std::move(out));
}

Value f_reverse(Interpreter& in, const Value& v, const Args&) {
  if (v.is_string()) {
    std::u32string chars = decode_utf8(v.text());
    std::reverse(chars.begin(), chars.end());
    return Value::string(encode_utf8(chars));
  }
  std::vector<Value> items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list_of(std::move(items));
}

Value f_round(Interpreter&, const Value& v, const Args& a) {
  const int64_t precision = int_param(a, 0, "precision", 0);
  const Value* method = arg(a, 1, "method");
  const std::string how = method && method->is_string() ? method->text() : "common";
  if (how != "common" && how != "ceil" && how != "floor") {
    fail(ErrorKind::invalid_argument, "method must be common, ceil or floor");
  }
  if (!v.is_number()) fail(ErrorKind::invalid_argument, "type {} doesn't define __round__ method", type_name(v));
  if (precision < -300 || precision > 300) fail(ErrorKind::out_of_range, "round() precision out of range");
  if (how != "common") {
    const double scale = std::pow(10.0, double(precision));
    const double x = v.as_double() * scale;
    return Value::floating((how == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
  }
  if (v.is_integral()) {
    if (precision >= 0) return Value::integer(v.as_int());
    const double scale = std::pow(10.0, double(-precision));
    return Value::integer(int64_t(std::nearbyint(double(v.as_int()) / scale) * scale));
  }
  if (!std::isfinite(v.f)) return v;
  if (precision >= 0) {
    // printf rounds the exact binary value, ties to even: Python's round() does the same.
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.*f", int(std::min<int64_t>(precision, 300)), v.f);
    return Value::floating(std::strtod(buf, nullptr));
  }
  const double scale = std::pow(10.0, double(-precision));
  return Value::floating(std::nearbyint(v.f / scale) * scale);
}

Value f_safe(Interpreter&, const Value& v, const Args&) { return v; }

Value f_sort(Interpreter& in, const Value& v, const Args& a) {
  const bool reverse = flag(a, 0, "reverse", false);
  const bool case_sensitive = flag(a, 1, "case_sensitive", false);
  const Value* attribute = arg(a, 2, "attribute");
  std::vector<Value> attributes;
  if (attribute != nullptr && attribute->is_string()) {
    for (auto& part : py::split(attribute->text(), std::string(","), -1)) attributes.push_back(Value::string(part));
  } else if (attribute != nullptr && !attribute->is_none()) {
    attributes.push_back(*attribute);
  }
  return Value::list_of(sorted(in, in.iterate(v), reverse, [&](const Value& item) {
    if (attributes.empty()) return ignore_case(item, case_sensitive);
    if (attributes.size() == 1) return ignore_case(lookup_path(in, item, attributes[0]), case_sensitive);
    std::vector<Value> keys;
    for (const auto& at : attributes) keys.push_back(ignore_case(lookup_path(in, item, at), case_sensitive));
    return Value::list_of(std::move(keys));
  }));
}

Value f_string(Interpreter&, const Value& v, const Args&) { return v.is_string() ? v : Value::string(to_str(v)); }

Value f_sum(Interpreter& in, const Value& v, const Args& a) {
  const Value* attribute = arg(a, 0, "attribute");
  const Value* start = arg(a, 1, "start");
  Value total = start ? *start : Value::integer(0);
  for (auto& item : in.iterate(v)) {
    const Value x = attribute ? lookup_path(in, item, *attribute) : item;
    if (!total.is_number() || !x.is_number()) {
      fail(ErrorKind::invalid_argument, "unsupported operand type(s) for +: '{}' and '{}'", type_name(total), type_name(x));
    }
    if (total.is_integral() && x.is_integral()) {
      int64_t r = 0;
      if (__builtin_add_overflow(total.as_int(), x.as_int(), &r)) fail(ErrorKind::out_of_range, "integer overflow");
      total = Value::integer(r);
    } else {
      total = Value::floating(total.as_double() + x.as_double());
    }
  }
  return total;
}

Value f_title(Interpreter&, const Value& v, const Args&) {
  // jinja2 capitalizes the first letter of each run between '-', whitespace and opening brackets.
  std::u32string chars = decode_utf8(to_str(v));
  bool start = true;
  for (char32_t& c : chars) {
    const bool separator = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_space(c);
    if (separator) {
      start = true;
      continue;
    }
    c = char32_t(start ? utf8proc_toupper(utf8proc_int32_t(c)) : utf8proc_tolower(utf8proc_int32_t(c)));
    start = false;
  }
  return Value::string(encode_utf8(chars));
}

Value f_tojson(Interpreter&, const Value& v, const Args& a) {
  JsonOptions o;
  o.ensure_ascii = flag(a, 0, "ensure_ascii", false);
  const Value* indent = arg(a, 1, "indent");
  if (indent != nullptr && !indent->is_none()) {
    o.has_indent = true;
    if (indent->is_string()) {
      o.indent = indent->text();
    } else if (indent->is_integral()) {
      o.indent = std::string(size_t(std::clamp<int64_t>(indent->as_int(), 0, 1024)), ' ');
    } else {
      fail(ErrorKind::invalid_argument, "tojson: indent must be an int or a string");
    }
    o.item_separator = ",";
  }
  const Value* separators = arg(a, 2, "separators");
  if (separators != nullptr && !separators->is_none()) {
    if (!separators->is_sequence() || separators->items().size() != 2 || !separators->items()[0].is_string() ||
        !separators->items()[1].is_string()) {
      fail(ErrorKind::invalid_argument, "tojson: separators must be a pair of strings");
    }
    o.item_separator = separators->items()[0].text();
    o.key_separator = separators->items()[1].text();
  }
  o.sort_keys = flag(a, 3, "sort_keys", false);
  return Value::string(to_json_text(v, o));
}

Value f_trim(Interpreter&, const Value& v, const Args& a) {
  const Value* chars = arg(a, 0, "chars");
  std::optional<std::string> set;
  if (chars != nullptr && !chars->is_none()) {
    if (!chars->is_string()) fail(ErrorKind::invalid_argument, "strip arg must be None or str");
    set = chars->text();
  }
  return Value::string(py::strip(to_str(v), set, true, true));
}

Value f_truncate(Interpreter&, const Value& v, const Args& a) {
  const std::string s = to_str(v);
  const int64_t length = int_param(a, 0, "length", 255);
  const bool killwords = flag(a, 1, "killwords", false);
  const Value* end_arg = arg(a, 2, "end");
  const std::string end = end_arg ? to_str(*end_arg) : "...";
  const int64_t leeway = int_param(a, 3, "leeway", 5);
  const std::u32string chars = decode_utf8(s);
  const int64_t end_length = int64_t(count_code_points(end));
  if (length < end_length) fail(ErrorKind::invalid_argument, "expected length >= {}, got {}", end_length, length);
  if (leeway < 0) fail(ErrorKind::invalid_argument, "expected leeway >= 0, got {}", leeway);
  if (int64_t(chars.size()) <= length + leeway) return Value::string(s);
  std::u32string head = chars.substr(0, size_t(length - end_length));
  if (!killwords) {
    const size_t space = head.rfind(U' ');
    if (space != std::u32string::npos) head = head.substr(0, space);
  }
  return Value::string(encode_utf8(head) + end);
}

Value f_unique(Interpreter& in, const Value& v, const Args& a) {
  const bool case_sensitive = flag(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  std::vector<Value> out, seen;
  for (auto& item : in.iterate(v)) {
    Value key = ignore_case(attribute ? lookup_path(in, item, *attribute) : item, case_sensitive);
    in.count(seen.size());
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return Value::list_of(std::move(out));
}

Value f_wordcount(Interpreter&, const Value& v, const Args&) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : decode_utf8(to_str(v))) {
    const auto cat = utf8proc_category(utf8proc_int32_t(c));
    const bool word = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                      (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
    if (word && !in_word) ++n;
    in_word = word;
  }
  return Value::integer(n);
}

Value f_format(Interpreter& in, const Value& v, const Args& a) {
  if (!a.keyword.empty()) {
    DictData d;
    for (const auto& [key, value] : a.keyword) d.set(Value::string(key), value);
    return Value::string(percent_format(in, to_str(v), Value::dict_of(std::move(d))));
  }
  return Value::string(percent_format(in, to_str(v), Value::tuple_of(a.positional)));
}

struct FilterEntry {
  Filter fn;
  std::vector<std::string_view> params;  // after the value; jinja2's names, for keyword arguments
  bool variadic = false;                 // takes any further arguments (map, select, format, ...)
};

const std::unordered_map<std::string, FilterEntry>& filters() {
  static const std::unordered_map<std::string, FilterEntry> table = {
      {"abs", {f_abs, {}}},
      {"attr", {f_attr, {"name"}}},
      {"batch", {f_batch, {"linecount", "fill_with"}}},
      {"capitalize", {f_capitalize, {}}},
      {"center", {f_center, {"width"}}},
      {"count", {f_length, {}}},
      {"d", {f_default, {"default_value", "boolean"}}},
      {"default", {f_default, {"default_value", "boolean"}}},
      {"dictsort", {f_dictsort, {"case_sensitive", "by", "reverse"}}},
      {"e", {f_escape, {}}},
      {"escape", {f_escape, {}}},
      {"forceescape", {f_escape, {}}},
      {"first", {f_first, {}}},
      {"float", {f_float, {"default"}}},
      {"format", {f_format, {}, true}},
      {"indent", {f_indent, {"width", "first", "blank"}}},
      {"int", {f_int, {"default", "base"}}},
      {"items", {f_items, {}}},
      {"join", {f_join, {"d", "attribute"}}},
      {"last", {f_last, {}}},
      {"length", {f_length, {}}},
      {"list", {f_list, {}}},
      {"lower", {f_lower, {}}},
      {"map", {f_map, {}, true}},
      {"max", {f_max, {"case_sensitive", "attribute"}}},
      {"min", {f_min, {"case_sensitive", "attribute"}}},
      {"reject", {f_reject, {}, true}},
      {"rejectattr", {f_rejectattr, {}, true}},
      {"replace", {f_replace, {"old", "new", "count"}}},
      {"reverse", {f_reverse, {}}},
      {"round", {f_round, {"precision", "method"}}},
      {"safe", {f_safe, {}}},
      {"select", {f_select, {}, true}},
      {"selectattr", {f_selectattr, {}, true}},
      {"sort", {f_sort, {"reverse", "case_sensitive", "attribute"}}},
      {"string", {f_string, {}}},
      {"sum", {f_sum, {"attribute", "start"}}},
      {"title", {f_title, {}}},
      {"tojson", {f_tojson, {"ensure_ascii", "indent", "separators", "sort_keys"}}},
      {"trim", {f_trim, {"chars"}}},
      {"truncate", {f_truncate, {"length", "killwords", "end", "leeway"}}},
      {"unique", {f_unique, {"case_sensitive", "attribute"}}},
      {"upper", {f_upper, {}}},
      {"wordcount", {f_wordcount, {}}},
  };
  return table;
}

// Python's binding of call arguments to a filter's parameters: too many, unknown or repeated
// arguments are a TypeError.
void check_filter_args(const std::string& name, const FilterEntry& entry, const Args& args) {
  if (entry.variadic) return;
  if (args.positional.size() > entry.params.size()) {
    fail(ErrorKind::invalid_argument, "{}() takes {} arguments after the value ({} given)", name, entry.params.size(),
         args.positional.size());
  }
  for (const auto& [key, value] : args.keyword) {
    const auto it = std::find(entry.params.begin(), entry.params.end(), key);
    if (it == entry.params.end()) fail(ErrorKind::invalid_argument, "{}() got an unexpected keyword argument '{}'", name, key);
    if (size_t(it - entry.params.begin()) < args.positional.size()) {
      fail(ErrorKind::invalid_argument, "{}() got multiple values for argument '{}'", name, key);
    }
  }
}

}  // namespace

bool is_filter(const std::string& name) { return filters().count(name) > 0; }

bool is_unsupported_filter(const std::string& name) {
  static const char* const names[] = {"filesizeformat", "groupby", "pprint", "random", "slice", "striptags",
                                      "urlencode", "urlize", "wordwrap", "xmlattr"};
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

Value apply_filter(Interpreter& in, const std::string& name, const Value& operand, const Args& args) {
  // charged for the size of what it works on
  in.count(1 + (operand.is_string() ? operand.text().size() / 8 : operand.is_sequence() ? operand.items().size() : 0));
  const auto it = filters().find(name);
  if (it == filters().end()) {
    if (is_unsupported_filter(name)) fail(ErrorKind::unsupported, "the '{}' filter is not supported", name);
    fail(ErrorKind::invalid_argument, "No filter named '{}'.", name);
  }
  check_filter_args(name, it->second, args);
  return it->second.fn(in, operand, args);
}

}  // namespace slm::jinja
