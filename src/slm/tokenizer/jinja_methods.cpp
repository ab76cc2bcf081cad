// Methods of str, list and dict values, the global functions a chat template can call, and
// Python's %-formatting.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "slm/tokenizer/jinja_interpreter.hpp"
#include "slm/tokenizer/jinja_strings.hpp"

namespace slm::jinja {

namespace {

using Fn = std::function<Value(Interpreter&, const Args&)>;

class Builtin : public Callable {
 public:
  Builtin(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  Value call(Interpreter& in, const Args& args) const override { return fn_(in, args); }
  std::string repr() const override { return "<built-in method " + name_ + ">"; }

 private:
  std::string name_;
  Fn fn_;
};

Value builtin(std::string name, Fn fn) { return Value::function(std::make_shared<Builtin>(std::move(name), std::move(fn))); }

const Value& required(const Args& args, size_t index, std::string_view name, std::string_view function) {
  const Value* v = args.get(index, name);
  if (v == nullptr) fail(ErrorKind::invalid_argument, "{}() missing required argument '{}'", function, name);
  return *v;
}

const std::string& string_arg(const Value& v, std::string_view function) {
  if (!v.is_string()) {
    fail(ErrorKind::invalid_argument, "{}() argument must be str, not {}", function, type_name(v));
  }
  return v.text();
}

std::optional<std::string> optional_string(const Args& args, size_t index, std::string_view name, std::string_view function) {
  const Value* v = args.get(index, name);
  if (v == nullptr || v->is_none()) return std::nullopt;
  return string_arg(*v, function);
}

int64_t int_arg(const Args& args, size_t index, std::string_view name, int64_t fallback, std::string_view function) {
  const Value* v = args.get(index, name);
  if (v == nullptr) return fallback;
  if (!v->is_integral()) {
    fail(ErrorKind::invalid_argument, "{}() argument '{}' must be int, not {}", function, name, type_name(*v));
  }
  return v->as_int();
}

Value strings_to_list(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::string(std::move(p)));
  return Value::list_of(std::move(items));
}

// startswith/endswith: a prefix or a tuple of them.
bool affix_match(const std::string& s, const Value& affix, bool at_start, std::string_view function) {
  auto one = [&](const Value& a) {
    const std::string& t = string_arg(a, function);
    if (t.size() > s.size()) return false;
    return at_start ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  if (affix.kind == Kind::tuple) {
    for (const auto& a : affix.items()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

// str.format with {} / {0} / {name} fields and no format specs.
std::string str_format(Interpreter& in, const std::string& fmt_text, const Args& args) {
  std::string out;
  size_t next_auto = 0;
  for (size_t k = 0; k < fmt_text.size(); ++k) {
    const char c = fmt_text[k];
    if (c == '}' ) {
      if (k + 1 < fmt_text.size() && fmt_text[k + 1] == '}') ++k;
      else fail(ErrorKind::invalid_argument, "Single '}}' encountered in format string");
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (k + 1 < fmt_text.size() && fmt_text[k + 1] == '{') {
      out.push_back('{');
      ++k;
      continue;
    }
    const size_t close = fmt_text.find('}', k);
    if (close == std::string::npos) fail(ErrorKind::invalid_argument, "Single '{{' encountered in format string");
    const std::string field = fmt_text.substr(k + 1, close - k - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      fail(ErrorKind::unsupported, "str.format fields with conversions or format specs are not supported");
    }
    const Value* v = nullptr;
    if (field.empty()) {
      v = next_auto < args.positional.size() ? &args.positional[next_auto] : nullptr;
      ++next_auto;
    } else if (field.find_first_not_of("0123456789") == std::string::npos) {
      const size_t index = size_t(std::stoull(field.substr(0, 9)));
      v = index < args.positional.size() ? &args.positional[index] : nullptr;
    } else {
      v = args.get_keyword(field);
    }
    if (v == nullptr) fail(ErrorKind::invalid_argument, "format field '{}' has no argument", field);
    out += to_str(*v);
    in.check_size(out.size());
    k = close;
  }
  return out;
}

Value string_method(const Value& self, const std::string& name, bool& found) {
  found = true;
  const std::string& s = self.text();
  // Each call is charged for the length of the string it works on.
  auto method = [&](Fn fn) {
    return builtin(name, [self, fn = std::move(fn)](Interpreter& in, const Args& a) {
      in.count(self.text().size() / 8);
      return fn(in, a);
    });
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip", right = name != "lstrip";
    return method([self, name, left, right](Interpreter&, const Args& a) {
      a.check(name, 1, {});
      return Value::string(py::strip(self.text(), optional_string(a, 0, "chars", name), left, right));
    });
  }
  if (name == "split" || name == "rsplit") {
    return method([self, name](Interpreter& in, const Args& a) {
      a.check(name, 2, {"sep", "maxsplit"});
      const auto sep = optional_string(a, 0, "sep", name);
      const int64_t maxsplit = int_arg(a, 1, "maxsplit", -1, name);
      in.count(self.text().size() / 8);
      return strings_to_list(name == "split" ? py::split(self.text(), sep, maxsplit) : py::rsplit(self.text(), sep, maxsplit));
    });
  }
  if (name == "splitlines") {
    return method([self](Interpreter&, const Args& a) {
      a.check("splitlines", 1, {"keepends"});
      const Value* keep = a.get(0, "keepends");
      if (keep != nullptr && !keep->is_integral()) {
        fail(ErrorKind::invalid_argument, "'{}' object cannot be interpreted as an integer", type_name(*keep));
      }
      return strings_to_list(py::splitlines(self.text(), keep != nullptr && truthy(*keep)));
    });
  }
  if (name == "startswith" || name == "endswith") {
    return method([self, name](Interpreter&, const Args& a) {
      a.check(name, 1, {});
      return Value::boolean(affix_match(self.text(), required(a, 0, "prefix", name), name == "startswith", name));
    });
  }
  using Map = std::string (*)(std::string_view);
  const std::pair<const char*, Map> maps[] = {{"upper", py::upper},           {"lower", py::lower},
                                              {"title", py::title},           {"capitalize", py::capitalize},
                                              {"swapcase", py::swapcase},     {"casefold", py::lower}};
  for (const auto& [map_name, fn] : maps) {
    if (name == map_name) {
      return method([self, name, fn = fn](Interpreter&, const Args& a) {
        a.check(name, 0, {});
        return Value::string(fn(self.text()));
      });
    }
  }
  using Pred = bool (*)(std::string_view);
  const std::pair<const char*, Pred> preds[] = {{"islower", py::is_lower}, {"isupper", py::is_upper},
                                                {"isalpha", py::is_alpha}, {"isdigit", py::is_digit},
                                                {"isalnum", py::is_alnum}, {"isspace", py::is_space},
                                                {"isdecimal", py::is_digit}, {"isnumeric", py::is_digit}};
  for (const auto& [pred_name, fn] : preds) {
    if (name == pred_name) {
      return method([self, name, fn = fn](Interpreter&, const Args& a) {
        a.check(name, 0, {});
        return Value::boolean(fn(self.text()));
      });
    }
  }
  if (name == "replace") {
    return method([self](Interpreter& in, const Args& a) {
      a.check("replace", 3, {"count"});
      const std::string& old = string_arg(required(a, 0, "old", "replace"), "replace");
      const std::string& rep = string_arg(required(a, 1, "new", "replace"), "replace");
      std::string out = py::replace(self.text(), old, rep, int_arg(a, 2, "count", -1, "replace"));
      in.check_size(out.size());
      return Value::string(std::move(out));
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    return method([self, name](Interpreter&, const Args& a) {
      a.check(name, 1, {});
      const std::string& sub = string_arg(required(a, 0, "sub", name), name);
      if (name == "count") return Value::integer(py::count(self.text(), sub));
      const int64_t k = name == "find" || name == "index" ? py::find(self.text(), sub) : py::rfind(self.text(), sub);
      if (k < 0 && (name == "index" || name == "rindex")) fail(ErrorKind::invalid_argument, "substring not found");
      return Value::integer(k);
    });
  }
  if (name == "join") {
    return method([self](Interpreter& in, const Args& a) {
      a.check("join", 1, {});
      std::string out;
      const std::vector<Value> items = in.iterate(required(a, 0, "iterable", "join"));
      for (size_t k = 0; k < items.size(); ++k) {
        if (!items[k].is_string()) {
          fail(ErrorKind::invalid_argument, "sequence item {}: expected str instance, {} found", k, type_name(items[k]));
        }
        if (k > 0) out += self.text();
        out += items[k].text();
        in.check_size(out.size());
      }
      return Value::string(std::move(out));
    });
  }
  if (name == "format") {
    return method([self](Interpreter& in, const Args& a) { return Value::string(str_format(in, self.text(), a)); });
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    return method([self, name](Interpreter& in, const Args& a) {
      a.check(name, 2, {});
      const int64_t width = int_arg(a, 0, "width", 0, name);
      const Value* fill = a.get(1, "fillchar");
      const std::string fill_text = fill ? string_arg(*fill, name) : " ";
      in.check_size(size_t(std::max<int64_t>(width, 0)) * fill_text.size());
      return Value::string(py::pad(self.text(), width, fill_text, name == "center" ? 0 : name == "ljust" ? -1 : 1));
    });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    return method([self, name](Interpreter&, const Args& a) {
      a.check(name, 1, {});
      const std::string& affix = string_arg(required(a, 0, "affix", name), name);
      const std::string& t = self.text();
      if (affix.size() <= t.size()) {
        if (name == "removeprefix" && t.compare(0, affix.size(), affix) == 0) return Value::string(t.substr(affix.size()));
        if (name == "removesuffix" && t.compare(t.size() - affix.size(), affix.size(), affix) == 0) {
          return Value::string(t.substr(0, t.size() - affix.size()));
        }
      }
      return self;
    });
  }
  if (name == "partition" || name == "rpartition") {
    return method([self, name](Interpreter&, const Args& a) {
      a.check(name, 1, {});
      const std::string& sep = string_arg(required(a, 0, "sep", name), name);
      if (sep.empty()) fail(ErrorKind::invalid_argument, "empty separator");
      const std::string& t = self.text();
      const size_t k = name == "partition" ? t.find(sep) : t.rfind(sep);
      if (k == std::string::npos) {
        return name == "partition" ? Value::tuple_of({self, Value::string(""), Value::string("")})
                                   : Value::tuple_of({Value::string(""), Value::string(""), self});
      }
      return Value::tuple_of({Value::string(t.substr(0, k)), Value::string(sep), Value::string(t.substr(k + sep.size()))});
    });
  }
  (void)s;
  found = false;
  return Value();
}

Value unsafe(const Value& self, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + type_name(self) + "' object is unsafe.");
}

Value list_method(const Value& self, const std::string& name, bool& found) {
  found = true;
  if (name == "count" || name == "index") {
    return builtin(name, [self, name](Interpreter& in, const Args& a) {
      a.check(name, 1, {});
      const Value& x = required(a, 0, "value", name);
      in.count(self.items().size());
      int64_t n = 0;
      for (size_t k = 0; k < self.items().size(); ++k) {
        if (!equals(self.items()[k], x)) continue;
        if (name == "index") return Value::integer(int64_t(k));
        ++n;
      }
      if (name == "index") fail(ErrorKind::invalid_argument, "{} is not in list", repr(x));
      return Value::integer(n);
    });
  }
  if (name == "copy" && self.kind == Kind::list) {
    return builtin(name, [self](Interpreter&, const Args&) { return self; });
  }
  for (const char* m : {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"}) {
    if (self.kind == Kind::list && name == m) return unsafe(self, name);
  }
  found = false;
  return Value();
}

Value dict_method(const Value& self, const std::string& name, bool& found) {
  found = true;
  if (name == "items" || name == "keys" || name == "values") {
    return builtin(name, [self, name](Interpreter& in, const Args& a) {
      a.check(name, 0, {});
      in.count(self.dict->items.size());
      std::vector<Value> out;
      out.reserve(self.dict->items.size());
      for (const auto& [key, value] : self.dict->items) {
        if (name == "items") out.push_back(Value::tuple_of({key, value}));
        else out.push_back(name == "keys" ? key : value);
      }
      return Value::list_of(std::move(out));
    });
  }
  if (name == "get") {
    return builtin(name, [self](Interpreter& in, const Args& a) {
      a.check("get", 2, {});
      in.count(self.dict->items.size());
      const Value* v = self.dict->find(required(a, 0, "key", "get"));
      if (v != nullptr) return *v;
      const Value* fallback = a.get(1, "default");
      return fallback ? *fallback : Value::none();
    });
  }
  if (name == "copy") return builtin(name, [self](Interpreter&, const Args&) { return Value::dict_of(*self.dict); });
  for (const char* m : {"pop", "popitem", "setdefault", "update", "clear"}) {
    if (name == m) return unsafe(self, name);
  }
  found = false;
  return Value();
}

std::string strftime_now(const std::string& format) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  if (format.empty()) return {};
  for (size_t size = 256; size <= 65536; size *= 4) {
    std::string buf(size, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
    if (n > 0) return buf.substr(0, n);
  }
  return {};
}

DictData kwargs_dict(Interpreter& in, const Args& a, std::string_view function) {
  DictData d;
  if (a.positional.size() > 1) fail(ErrorKind::invalid_argument, "{} expected at most 1 argument", function);
  if (!a.positional.empty()) {
    const Value& source = a.positional[0];
    if (source.is_undefined()) fail_undefined(source);
    if (source.is_mapping()) {
      d = *source.dict;
    } else {
      for (const Value& pair : in.iterate(source)) {
        if (!pair.is_sequence() || pair.items().size() != 2) {
          fail(ErrorKind::invalid_argument, "{}: expected a sequence of key/value pairs", function);
        }
        d.set(pair.items()[0], pair.items()[1]);
      }
    }
  }
  for (const auto& [key, value] : a.keyword) d.set(Value::string(key), value);
  return d;
}

class Joiner : public Callable {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  Value call(Interpreter&, const Args&) const override {
    if (!used_) {
      used_ = true;
      return Value::string("");
    }
    return Value::string(sep_);
  }
  std::string repr() const override { return "<jinja2.utils.Joiner object>"; }

 private:
  std::string sep_;
  mutable bool used_ = false;
};

}  // namespace

Value get_method(const Value& object, const std::string& name, bool& found) {
  found = false;
  if (name.empty() || name[0] == '_') return Value();
  if (object.is_string()) return string_method(object, name, found);
  if (object.is_sequence()) return list_method(object, name, found);
  if (object.kind == Kind::dict) return dict_method(object, name, found);
  return Value();
}

void add_globals(Frame& frame) {
  frame.vars["raise_exception"] = builtin("raise_exception", [](Interpreter&, const Args& a) -> Value {
    const Value* message = a.get(0, "message");
    if (message == nullptr) fail(ErrorKind::invalid_argument, "raise_exception() missing required argument 'message'");
    throw TemplateRaised(to_str(*message));
  });
  frame.vars["strftime_now"] = builtin("strftime_now", [](Interpreter&, const Args& a) {
    a.check("strftime_now", 1, {"format"});
    return Value::string(strftime_now(string_arg(required(a, 0, "format", "strftime_now"), "strftime_now")));
  });
  frame.vars["range"] = builtin("range", [](Interpreter& in, const Args& a) {
    a.check("range", 3, {});
    if (a.positional.empty()) fail(ErrorKind::invalid_argument, "range expected at least 1 argument, got 0");
    int64_t bounds[3] = {0, 0, 1};
    for (size_t k = 0; k < a.positional.size(); ++k) {
      if (!a.positional[k].is_integral()) {
        fail(ErrorKind::invalid_argument, "'{}' object cannot be interpreted as an integer", type_name(a.positional[k]));
      }
    }
    if (a.positional.size() == 1) {
      bounds[1] = a.positional[0].as_int();
    } else {
      bounds[0] = a.positional[0].as_int();
      bounds[1] = a.positional[1].as_int();
      if (a.positional.size() == 3) bounds[2] = a.positional[2].as_int();
    }
    const int64_t start = bounds[0], stop = bounds[1], step = bounds[2];
    if (step == 0) fail(ErrorKind::invalid_argument, "range() arg 3 must not be zero");
    const double n = std::ceil((double(stop) - double(start)) / double(step));
    if (n > 100000) {
      fail(ErrorKind::out_of_range, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    std::vector<Value> items;
    for (int64_t v = start; step > 0 ? v < stop : v > stop; v += step) items.push_back(Value::integer(v));
    in.count(items.size());
    return Value::list_of(std::move(items));
  });
  frame.vars["dict"] = builtin("dict", [](Interpreter& in, const Args& a) { return Value::dict_of(kwargs_dict(in, a, "dict")); });
  frame.vars["namespace"] = builtin("namespace", [](Interpreter& in, const Args& a) {
    Value ns = Value::ns_of(kwargs_dict(in, a, "namespace"));
    in.track(ns.dict);
    return ns;
  });
  frame.vars["joiner"] = builtin("joiner", [](Interpreter&, const Args& a) {
    a.check("joiner", 1, {"sep"});
    const Value* sep = a.get(0, "sep");
    return Value::function(std::make_shared<Joiner>(sep ? to_str(*sep) : ", "));
  });
}

std::string percent_format(Interpreter& in, const std::string& format, const Value& args) {
  std::vector<Value> values;
  const Value* mapping = nullptr;
  if (args.kind == Kind::tuple) {
    values = args.items();
  } else if (args.is_mapping()) {
    mapping = &args;
  } else {
    values.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < format.size(); ++k) {
    if (format[k] != '%') {
      out.push_back(format[k]);
      continue;
    }
    if (++k >= format.size()) fail(ErrorKind::invalid_argument, "incomplete format");
    const Value* v = nullptr;
    if (format[k] == '(') {
      const size_t close = format.find(')', k);
      if (close == std::string::npos || mapping == nullptr) fail(ErrorKind::invalid_argument, "format requires a mapping");
      v = mapping->dict->find(std::string_view(format).substr(k + 1, close - k - 1));
      if (v == nullptr) fail(ErrorKind::invalid_argument, "format key not found");
      k = close + 1;
    }
    std::string flags;
    while (k < format.size() && std::string_view("-+ 0#").find(format[k]) != std::string_view::npos) flags += format[k++];
    std::string width, precision;
    while (k < format.size() && std::isdigit(static_cast<unsigned char>(format[k]))) width += format[k++];
    if (k < format.size() && format[k] == '.') {
      ++k;
      precision = "0";
      while (k < format.size() && std::isdigit(static_cast<unsigned char>(format[k]))) precision += format[k++];
    }
    if (k >= format.size()) fail(ErrorKind::invalid_argument, "incomplete format");
    const char conv = format[k];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (v == nullptr) {
      if (next >= values.size()) fail(ErrorKind::invalid_argument, "not enough arguments for format string");
      v = &values[next++];
    }
    if (width.size() > 6 || precision.size() > 6) fail(ErrorKind::out_of_range, "format width or precision too large");
    std::string piece;
    const int w = width.empty() ? 0 : std::stoi(width);
    const int p = precision.empty() ? -1 : std::stoi(precision);
    const bool left = flags.find('-') != std::string::npos;
    if (conv == 's' || conv == 'r' || conv == 'a') {
      piece = conv == 's' ? to_str(*v) : repr(*v);
      if (p >= 0) piece = encode_utf8(std::u32string_view(decode_utf8(piece)).substr(0, size_t(p)));
    } else if (conv == 'd' || conv == 'i' || conv == 'f' || conv == 'F' || conv == 'e' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!v->is_number()) {
        fail(ErrorKind::invalid_argument, "%{} format: a real number is required, not {}", conv, type_name(*v));
      }
      std::string cflags = flags;
      cflags.erase(std::remove(cflags.begin(), cflags.end(), '-'), cflags.end());
      const std::string prec = p >= 0 ? "." + std::to_string(p) : "";
      if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
        const int64_t n = v->kind == Kind::floating ? int64_t(std::trunc(v->f)) : v->as_int();
        const std::string c = conv == 'i' ? "d" : std::string(1, conv);
        piece = fmt::format(fmt::runtime("{:" + c + "}"), n < 0 ? -(n + 1) + uint64_t(1) : uint64_t(n));
        if (p > int(piece.size())) piece.insert(0, size_t(p) - piece.size(), '0');  // precision: minimum digits
        if (n < 0) piece.insert(0, "-");
        else if (cflags.find('+') != std::string::npos) piece.insert(0, "+");
        else if (cflags.find(' ') != std::string::npos) piece.insert(0, " ");
      } else {
        char buf[512];
        std::snprintf(buf, sizeof(buf), ("%" + cflags + prec + conv).c_str(), v->as_double());
        piece = buf;
      }
    } else {
      fail(ErrorKind::unsupported, "the %{} conversion is not supported", conv);
    }
    const int64_t length = int64_t(count_code_points(piece));
    if (w > length) {
      const bool zero = flags.find('0') != std::string::npos && !left && conv != 's' && conv != 'r';
      const std::string fill(size_t(w - length), zero ? '0' : ' ');
      if (left) piece += fill;
      else if (zero && !piece.empty() && (piece[0] == '-' || piece[0] == '+')) piece.insert(1, fill);
      else piece = fill + piece;
    }
    out += piece;
    in.check_size(out.size());
  }
  if (mapping == nullptr && next < values.size()) {
    fail(ErrorKind::invalid_argument, "not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace slm::jinja
