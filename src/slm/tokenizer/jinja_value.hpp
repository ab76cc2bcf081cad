// Values of the chat-template interpreter: the Python objects a Jinja2 template sees (None, bool,
// int, float, str, list, tuple, dict, jinja2's Undefined and Namespace, callables), with Python's
// semantics for truthiness, equality, ordering, str() and repr(), and conversion from and to JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace slm::jinja {

class Interpreter;
struct Value;

enum class Kind : uint8_t {
  undefined,  // jinja2's Undefined: prints as "", falsy, fails when used as an object
  none,
  boolean,
  integer,
  floating,
  string,
  list,
  tuple,
  dict,
  ns,        // jinja2's Namespace: a dict whose attributes `set ns.x = ...` may change
  callable,  // built-in functions, bound methods, macros
};

// Ordered (insertion order, as Python dicts are) key/value pairs. Lists and dicts are never
// changed once built (the sandbox forbids it); only namespaces are.
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

// Arguments of a call, as Python passes them.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index` or named `name`, consumed; nullptr when neither was given.
  const Value* get(size_t index, std::string_view name) const;
  const Value* get_keyword(std::string_view name) const;
  // Fails unless every argument is among the first `max_positional` or named in `names`.
  void check(std::string_view function, size_t max_positional, std::initializer_list<std::string_view> names) const;
};

class Callable {
 public:
  virtual ~Callable() = default;
  virtual Value call(Interpreter& interpreter, const Args& args) const = 0;
  virtual std::string repr() const = 0;
};

struct Value {
  Kind kind = Kind::undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  // string: the text; undefined: the message of the error raised when it is used.
  std::shared_ptr<const std::string> str;
  std::shared_ptr<const std::vector<Value>> list;  // list, tuple
  std::shared_ptr<DictData> dict;                  // dict, ns
  std::shared_ptr<const Callable> fn;

  static Value undefined(std::string message);
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value floating(double v);
  static Value string(std::string v);
  static Value list_of(std::vector<Value> items);
  static Value tuple_of(std::vector<Value> items);
  static Value dict_of(DictData data);
  static Value ns_of(DictData data);
  static Value function(std::shared_ptr<const Callable> callable);

  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_none() const { return kind == Kind::none; }
  bool is_string() const { return kind == Kind::string; }
  bool is_number() const { return kind == Kind::boolean || kind == Kind::integer || kind == Kind::floating; }
  bool is_integral() const { return kind == Kind::boolean || kind == Kind::integer; }
  bool is_sequence() const { return kind == Kind::list || kind == Kind::tuple; }
  bool is_mapping() const { return kind == Kind::dict || kind == Kind::ns; }
  const std::string& text() const { return *str; }  // string only
  const std::vector<Value>& items() const { return *list; }  // list/tuple only
  int64_t as_int() const { return kind == Kind::boolean ? int64_t(b) : i; }  // boolean/integer only
  double as_double() const;  // numbers only
};

// Python's type name: 'str', 'int', 'NoneType', 'dict', ...
std::string type_name(const Value& v);
bool truthy(const Value& v);
// Python's ==.
bool equals(const Value& a, const Value& b);
// Python's <, for numbers, strings and sequences; fails (TypeError) for anything else. `op` names
// the operator in the error.
bool less(const Value& a, const Value& b, std::string_view op = "<");
// str() and repr().
std::string to_str(const Value& v);
std::string repr(const Value& v);
std::string float_repr(double v);
// Raises the error an Undefined carries (jinja2's UndefinedError).
[[noreturn]] void fail_undefined(const Value& v);

Value from_json(const nlohmann::ordered_json& j);

struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // the text of one level, when has_indent
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// Python's json.dumps with these options.
std::string to_json_text(const Value& v, const JsonOptions& options);

// Code points of UTF-8 text; invalid bytes become U+FFFD.
std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);
size_t count_code_points(std::string_view text);
// Python's str.isspace() for one code point.
bool is_space(char32_t c);

}  // namespace slm::jinja
