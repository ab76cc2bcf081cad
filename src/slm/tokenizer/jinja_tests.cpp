// jinja2's built-in tests (`x is defined`, `x is divisibleby 3`, ...).
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "slm/tokenizer/jinja_interpreter.hpp"
#include "slm/tokenizer/jinja_strings.hpp"

namespace slm::jinja {

namespace {

using Test = bool (*)(Interpreter&, const Value&, const Args&);

const Value& test_arg(const Args& a, std::string_view test) {
  if (a.positional.empty()) fail(ErrorKind::invalid_argument, "the '{}' test needs an argument", test);
  return a.positional[0];
}

bool t_defined(Interpreter&, const Value& v, const Args&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, const Args&) { return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, const Args&) { return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, const Args&) { return v.kind == Kind::boolean; }
bool t_true(Interpreter&, const Value& v, const Args&) { return v.kind == Kind::boolean && v.b; }
bool t_false(Interpreter&, const Value& v, const Args&) { return v.kind == Kind::boolean && !v.b; }
bool t_integer(Interpreter&, const Value& v, const Args&) { return v.kind == Kind::integer; }
bool t_float(Interpreter&, const Value& v, const Args&) { return v.kind == Kind::floating; }
bool t_number(Interpreter&, const Value& v, const Args&) { return v.is_number(); }
bool t_string(Interpreter&, const Value& v, const Args&) { return v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, const Args&) { return v.kind == Kind::dict; }
bool t_iterable(Interpreter&, const Value& v, const Args&) {
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.kind == Kind::dict;
}
bool t_sequence(Interpreter&, const Value& v, const Args&) {
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.kind == Kind::dict;
}
bool t_callable(Interpreter&, const Value& v, const Args&) { return v.kind == Kind::callable || v.is_undefined(); }
bool t_escaped(Interpreter&, const Value&, const Args&) { return false; }

int64_t integral_for(const Value& v, std::string_view test) {
  if (v.is_integral()) return v.as_int();
  fail(ErrorKind::invalid_argument, "the '{}' test needs an integer, found {}", test, type_name(v));
}
bool t_odd(Interpreter&, const Value& v, const Args&) {
  if (v.kind == Kind::floating) return std::fmod(std::fabs(v.f), 2.0) == 1.0;
  return (integral_for(v, "odd") & 1) != 0;
}
bool t_even(Interpreter&, const Value& v, const Args&) {
  if (v.kind == Kind::floating) return std::fmod(std::fabs(v.f), 2.0) == 0.0;
  return (integral_for(v, "even") & 1) == 0;
}
bool t_divisibleby(Interpreter&, const Value& v, const Args& a) {
  const Value& n = test_arg(a, "divisibleby");
  if (v.is_integral() && n.is_integral()) {
    if (n.as_int() == 0) fail(ErrorKind::invalid_argument, "integer division or modulo by zero");
    return n.as_int() == -1 || v.as_int() % n.as_int() == 0;
  }
  if (v.is_number() && n.is_number()) {
    if (n.as_double() == 0.0) fail(ErrorKind::invalid_argument, "float modulo");
    return std::fmod(v.as_double(), n.as_double()) == 0.0;
  }
  fail(ErrorKind::invalid_argument, "the 'divisibleby' test needs numbers");
}
bool t_lower(Interpreter&, const Value& v, const Args&) { return py::is_lower(to_str(v)); }
bool t_upper(Interpreter&, const Value& v, const Args&) { return py::is_upper(to_str(v)); }
bool t_sameas(Interpreter&, const Value& v, const Args& a) {
  const Value& o = test_arg(a, "sameas");
  if (v.kind != o.kind) return false;
  switch (v.kind) {
    case Kind::none:
    case Kind::undefined: return v.kind == Kind::none || v.str == o.str;
    case Kind::boolean: return v.b == o.b;
    case Kind::integer: return v.i == o.i && v.i >= -5 && v.i <= 256;  // CPython's cached small ints
    case Kind::string: return v.str == o.str;
    case Kind::list:
    case Kind::tuple: return v.list == o.list;
    case Kind::dict:
    case Kind::ns: return v.dict == o.dict;
    case Kind::callable: return v.fn == o.fn;
    default: return false;
  }
}
bool t_in(Interpreter& in, const Value& v, const Args& a) {
  const Value& seq = test_arg(a, "in");
  if (seq.is_string()) {
    if (!v.is_string()) fail(ErrorKind::invalid_argument, "'in <string>' requires string as left operand, not {}", type_name(v));
    return seq.text().find(v.text()) != std::string::npos;
  }
  if (seq.kind == Kind::dict) return seq.dict->find(v) != nullptr;
  for (const auto& item : in.iterate(seq)) {
    if (equals(item, v)) return true;
  }
  return false;
}
bool t_eq(Interpreter&, const Value& v, const Args& a) { return equals(v, test_arg(a, "eq")); }
bool t_ne(Interpreter&, const Value& v, const Args& a) { return !equals(v, test_arg(a, "ne")); }
void undefined_check(const Value& x, const Value& y) {
  if (x.is_undefined()) fail_undefined(x);
  if (y.is_undefined()) fail_undefined(y);
}
bool t_lt(Interpreter&, const Value& v, const Args& a) {
  undefined_check(v, test_arg(a, "lt"));
  return less(v, test_arg(a, "lt"));
}
bool t_gt(Interpreter&, const Value& v, const Args& a) {
  undefined_check(v, test_arg(a, "gt"));
  return less(test_arg(a, "gt"), v, ">");
}
bool t_le(Interpreter&, const Value& v, const Args& a) {
  undefined_check(v, test_arg(a, "le"));
  return !less(test_arg(a, "le"), v, "<=");
}
bool t_ge(Interpreter&, const Value& v, const Args& a) {
  undefined_check(v, test_arg(a, "ge"));
  return !less(v, test_arg(a, "ge"), ">=");
}
bool t_filter(Interpreter&, const Value& v, const Args&) { return v.is_string() && is_filter(v.text()); }
bool t_test(Interpreter&, const Value& v, const Args&) { return v.is_string() && is_test(v.text()); }

const std::unordered_map<std::string, Test>& tests() {
  static const std::unordered_map<std::string, Test> table = {
      {"defined", t_defined},   {"undefined", t_undefined}, {"none", t_none},         {"boolean", t_boolean},
      {"true", t_true},         {"false", t_false},         {"integer", t_integer},   {"float", t_float},
      {"number", t_number},     {"string", t_string},       {"mapping", t_mapping},   {"iterable", t_iterable},
      {"sequence", t_sequence}, {"callable", t_callable},   {"escaped", t_escaped},   {"odd", t_odd},
      {"even", t_even},         {"divisibleby", t_divisibleby}, {"lower", t_lower},   {"upper", t_upper},
      {"sameas", t_sameas},     {"in", t_in},               {"eq", t_eq},             {"equalto", t_eq},
      {"==", t_eq},             {"ne", t_ne},               {"!=", t_ne},             {"lt", t_lt},
      {"lessthan", t_lt},       {"<", t_lt},                {"le", t_le},             {"<=", t_le},
      {"gt", t_gt},             {"greaterthan", t_gt},      {">", t_gt},              {"ge", t_ge},
      {">=", t_ge},             {"filter", t_filter},       {"test", t_test},
  };
  return table;
}

}  // namespace

bool is_test(const std::string& name) { return tests().count(name) > 0; }

bool apply_test(Interpreter& in, const std::string& name, const Value& operand, const Args& args) {
  in.count();
  const auto it = tests().find(name);
  if (it == tests().end()) fail(ErrorKind::invalid_argument, "No test named '{}'.", name);
  static const char* const binary[] = {"divisibleby", "sameas", "in", "eq", "equalto", "==", "ne", "!=", "lt",
                                       "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">="};
  const size_t arity = std::find(std::begin(binary), std::end(binary), name) != std::end(binary) ? 1 : 0;
  if (args.positional.size() + args.keyword.size() != arity) {
    fail(ErrorKind::invalid_argument, "test_{}() takes {} positional argument{} but {} were given", name, arity + 1,
         arity == 0 ? "" : "s", args.positional.size() + args.keyword.size() + 1);
  }
  return it->second(in, operand, args);
}

}  // namespace slm::jinja
