#include "slm/tokenizer/jinja_interpreter.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

namespace slm::jinja {

namespace {

// Python's "'dict object'" naming of an object in Undefined messages.
std::string object_description(const Value& v) {
  if (v.is_none()) return "'None'";
  if (v.kind == Kind::ns) return "'jinja2.utils.Namespace object'";
  if (v.kind == Kind::undefined) return "'jinja2.runtime.Undefined object'";
  if (v.kind == Kind::callable) return "'function object'";
  return "'" + type_name(v) + " object'";
}

Value missing_attribute(const Value& object, const std::string& name) {
  return Value::undefined(object_description(object) + " has no attribute " + repr(Value::string(name)));
}

Value missing_element(const Value& object, const Value& key) {
  if (key.is_string()) return missing_attribute(object, key.text());
  return Value::undefined(object_description(object) + " has no element " + repr(key));
}

class MacroFunction : public Callable {
 public:
  MacroFunction(const Stmt* macro, Frame* closure) : macro_(macro), closure_(closure) {}
  Value call(Interpreter& in, const Args& args) const override { return in.call_macro(*macro_, closure_, args, nullptr); }
  std::string repr() const override { return "<Macro '" + (macro_->name.empty() ? "caller" : macro_->name) + "'>"; }

 private:
  const Stmt* macro_;
  Frame* closure_;
};

class NativeFunction : public Callable {
 public:
  using Fn = std::function<Value(Interpreter&, const Args&)>;
  NativeFunction(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  Value call(Interpreter& in, const Args& args) const override { return fn_(in, args); }
  std::string repr() const override { return "<function " + name_ + ">"; }

 private:
  std::string name_;
  Fn fn_;
};

template <typename Op>
int64_t checked(Op op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op(x, y, &r)) fail(ErrorKind::out_of_range, "integer overflow");
  return r;
}
bool add_overflow(int64_t x, int64_t y, int64_t* r) { return __builtin_add_overflow(x, y, r); }
bool sub_overflow(int64_t x, int64_t y, int64_t* r) { return __builtin_sub_overflow(x, y, r); }
bool mul_overflow(int64_t x, int64_t y, int64_t* r) { return __builtin_mul_overflow(x, y, r); }

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) fail(ErrorKind::invalid_argument, "integer division or modulo by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1) fail(ErrorKind::out_of_range, "integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod(int64_t a, int64_t b) {
  if (b == 0) fail(ErrorKind::invalid_argument, "integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

[[noreturn]] void unsupported_operands(const std::string& op, const Value& a, const Value& b) {
  if (op == "+" && a.is_string()) {
    fail(ErrorKind::invalid_argument, "can only concatenate str (not \"{}\") to str", type_name(b));
  }
  if (op == "+" && a.kind == Kind::list) {
    fail(ErrorKind::invalid_argument, "can only concatenate list (not \"{}\") to list", type_name(b));
  }
  fail(ErrorKind::invalid_argument, "unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a),
       type_name(b));
}

}  // namespace

Interpreter::Interpreter(const TemplateLimits& limits) : limits_(limits) {}

Interpreter::~Interpreter() {
  // A namespace may hold itself (or a value holding it): empty them all so nothing leaks.
  for (auto& weak : namespaces_) {
    if (auto data = weak.lock()) data->items.clear();
  }
}

void Interpreter::count(size_t n) {
  operations_ += n;
  if (operations_ > limits_.max_operations) {
    fail(ErrorKind::out_of_range, "chat template: more than {} operations", limits_.max_operations);
  }
}

void Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    fail(ErrorKind::out_of_range, "chat template: a string of {} bytes passes the limit of {} bytes", bytes,
         limits_.max_output_bytes);
  }
}

void Interpreter::append(std::string& out, const std::string& text) const {
  if (out.size() + text.size() > limits_.max_output_bytes) {
    fail(ErrorKind::out_of_range, "chat template: the output passes the limit of {} bytes", limits_.max_output_bytes);
  }
  out += text;
}

Frame* Interpreter::new_frame(Frame* parent) {
  frames_.push_back(std::make_unique<Frame>());
  frames_.back()->parent = parent;
  return frames_.back().get();
}

Value Interpreter::lookup(Frame* frame, const std::string& name) const {
  for (Frame* f = frame; f != nullptr; f = f->parent) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  return Value::undefined("'" + name + "' is undefined");
}

std::string Interpreter::render(const Program& program, const Value& context) {
  Frame* globals = new_frame(nullptr);
  add_globals(*globals);
  for (const auto& [key, value] : context.dict->items) {
    if (key.is_string()) globals->vars[key.text()] = value;
  }
  Frame* root = new_frame(globals);
  std::string out;
  exec(program.body, root, out);
  return out;
}

// ---- statements ----

Interpreter::Flow Interpreter::exec(const Body& body, Frame* frame, std::string& out) {
  for (const auto& s : body) {
    const Flow flow = exec_stmt(*s, frame, out);
    if (flow != Flow::normal) return flow;
  }
  return Flow::normal;
}

std::string Interpreter::render_body(const Body& body, Frame* frame) {
  std::string out;
  exec(body, new_frame(frame), out);
  return out;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, Frame* frame, std::string& out) {
  count();
  // The line of the innermost statement running when an error is raised stays in line_.
  struct LineGuard {
    int& line;
    int saved;
    ~LineGuard() {
      if (std::uncaught_exceptions() == 0) line = saved;
    }
  } guard{line_, line_};
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::text: append(out, s.text); return Flow::normal;
    case StmtKind::output: append(out, to_str(eval(*s.expr, frame))); return Flow::normal;
    case StmtKind::if_chain:
      for (const auto& [condition, body] : s.branches) {
        if (truthy(eval(*condition, frame))) return exec(body, frame, out);
      }
      return exec(s.else_body, frame, out);
    case StmtKind::for_loop: return exec_for(s, frame, out);
    case StmtKind::set: assign(frame, s.target, eval(*s.expr, frame)); return Flow::normal;
    case StmtKind::set_block: {
      Value value = Value::string(render_body(s.body, frame));
      assign(frame, s.target, apply_filter_chain(s.filters, std::move(value), frame));
      return Flow::normal;
    }
    case StmtKind::macro:
      frame->vars[s.name] = Value::function(std::make_shared<MacroFunction>(&s, frame));
      return Flow::normal;
    case StmtKind::call_block: {
      const Value caller = Value::function(std::make_shared<MacroFunction>(&s, frame));
      const Expr& call_expr = *s.expr;
      const Value callee = eval(*call_expr.args[0], frame);
      Args args = eval_args(call_expr, frame, 1);
      args.keyword.emplace_back("caller", caller);
      append(out, to_str(call(callee, args)));
      return Flow::normal;
    }
    case StmtKind::filter_block:
      append(out, to_str(apply_filter_chain(s.filters, Value::string(render_body(s.body, frame)), frame)));
      return Flow::normal;
    case StmtKind::with: {
      Frame* inner = new_frame(frame);
      for (const auto& [target, value] : s.assignments) assign(inner, target, eval(*value, frame));
      return exec(s.body, inner, out);
    }
    case StmtKind::loop_break: return Flow::break_loop;
    case StmtKind::loop_continue: return Flow::continue_loop;
    case StmtKind::scope: return exec(s.body, new_frame(frame), out);
  }
  return Flow::normal;
}

void Interpreter::assign(Frame* frame, const Target& target, const Value& value) {
  switch (target.kind) {
    case Target::Kind::name: frame->vars[target.name] = value; return;
    case Target::Kind::attribute: {
      const Value ns = lookup(frame, target.name);
      if (ns.kind != Kind::ns) fail(ErrorKind::invalid_argument, "cannot assign attribute on non-namespace object");
      ns.dict->set(Value::string(target.attribute), value);
      return;
    }
    case Target::Kind::tuple: {
      if (value.is_undefined()) fail_undefined(value);
      const std::vector<Value> items = iterate(value);
      if (items.size() > target.items.size()) {
        fail(ErrorKind::invalid_argument, "too many values to unpack (expected {})", target.items.size());
      }
      if (items.size() < target.items.size()) {
        fail(ErrorKind::invalid_argument, "not enough values to unpack (expected {}, got {})", target.items.size(),
             items.size());
      }
      for (size_t k = 0; k < items.size(); ++k) assign(frame, target.items[k], items[k]);
      return;
    }
  }
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, Frame* frame, std::string& out) {
  std::vector<Value> items = iterate(eval(*s.expr, frame));
  if (s.condition) {
    std::vector<Value> kept;
    for (auto& item : items) {
      count();
      Frame* test_frame = new_frame(frame);
      assign(test_frame, s.target, item);
      if (truthy(eval(*s.condition, test_frame))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(s.else_body, new_frame(frame), out);
  const auto length = int64_t(items.size());
  for (int64_t index = 0; index < length; ++index) {
    if (++iterations_ > limits_.max_loop_iterations) {
      fail(ErrorKind::out_of_range, "chat template: more than {} loop iterations", limits_.max_loop_iterations);
    }
    Frame* inner = new_frame(frame);
    assign(inner, s.target, items[size_t(index)]);
    DictData loop;
    loop.items.reserve(12);
    auto put = [&](const char* key, Value v) { loop.items.emplace_back(Value::string(key), std::move(v)); };
    put("index", Value::integer(index + 1));
    put("index0", Value::integer(index));
    put("revindex", Value::integer(length - index));
    put("revindex0", Value::integer(length - index - 1));
    put("first", Value::boolean(index == 0));
    put("last", Value::boolean(index == length - 1));
    put("length", Value::integer(length));
    put("depth", Value::integer(1));
    put("depth0", Value::integer(0));
    if (index > 0) put("previtem", items[size_t(index - 1)]);
    if (index + 1 < length) put("nextitem", items[size_t(index + 1)]);
    put("cycle", Value::function(std::make_shared<NativeFunction>("cycle", [index](Interpreter&, const Args& args) {
          if (args.positional.empty()) fail(ErrorKind::invalid_argument, "no items for cycling given");
          return args.positional[size_t(index) % args.positional.size()];
        })));
    inner->vars["loop"] = Value::dict_of(std::move(loop));
    if (exec(s.body, inner, out) == Flow::break_loop) break;
  }
  return Flow::normal;
}

Value Interpreter::call_macro(const Stmt& macro, Frame* closure, const Args& args, const Value* caller) {
  if (depth_ >= limits_.max_recursion) {
    fail(ErrorKind::out_of_range, "chat template: macro calls nested deeper than {}", limits_.max_recursion);
  }
  const std::string name = macro.name.empty() ? "caller" : macro.name;
  Frame* frame = new_frame(closure);
  const size_t n = macro.params.size();
  std::vector<bool> given(n, false);
  std::vector<Value> extra;
  for (size_t k = 0; k < args.positional.size(); ++k) {
    if (k < n) {
      frame->vars[macro.params[k]] = args.positional[k];
      given[k] = true;
    } else {
      extra.push_back(args.positional[k]);
    }
  }
  if (!extra.empty() && !macro.uses_varargs) {
    fail(ErrorKind::invalid_argument, "macro '{}' takes not more than {} argument(s)", name, n);
  }
  DictData kwargs;
  for (const auto& [key, value] : args.keyword) {
    const auto it = std::find(macro.params.begin(), macro.params.end(), key);
    if (it != macro.params.end()) {
      const size_t k = size_t(it - macro.params.begin());
      if (given[k]) fail(ErrorKind::invalid_argument, "macro '{}' got multiple values for argument '{}'", name, key);
      frame->vars[key] = value;
      given[k] = true;
    } else if (key == "caller") {
      frame->vars["caller"] = value;
    } else if (macro.uses_kwargs) {
      kwargs.items.emplace_back(Value::string(key), value);
    } else {
      fail(ErrorKind::invalid_argument, "macro '{}' takes no keyword argument '{}'", name, key);
    }
  }
  if (caller != nullptr) frame->vars["caller"] = *caller;
  ++depth_;
  struct DepthGuard {
    size_t& depth;
    ~DepthGuard() { --depth; }
  } guard{depth_};
  for (size_t k = 0; k < n; ++k) {
    if (given[k]) continue;
    frame->vars[macro.params[k]] = macro.defaults[k]
                                       ? eval(*macro.defaults[k], frame)
                                       : Value::undefined("parameter '" + macro.params[k] + "' was not provided");
  }
  if (macro.uses_varargs) frame->vars["varargs"] = Value::tuple_of(std::move(extra));
  if (macro.uses_kwargs) frame->vars["kwargs"] = Value::dict_of(std::move(kwargs));
  std::string out;
  exec(macro.body, frame, out);
  return Value::string(std::move(out));
}

Value Interpreter::apply_filter_chain(const std::vector<ExprPtr>& filters, Value value, Frame* frame) {
  for (const auto& f : filters) {
    const Args args = eval_args(*f, frame, 1);
    value = apply_filter(*this, f->name, value, args);
  }
  return value;
}

// ---- values ----

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return {};
    case Kind::list:
    case Kind::tuple: count(v.list->size()); return *v.list;
    case Kind::dict: {
      count(v.dict->items.size());
      std::vector<Value> keys;
      keys.reserve(v.dict->items.size());
      for (const auto& entry : v.dict->items) keys.push_back(entry.first);
      return keys;
    }
    case Kind::string: {
      const std::u32string chars = decode_utf8(v.text());
      count(chars.size());
      std::vector<Value> out;
      out.reserve(chars.size());
      for (char32_t c : chars) out.push_back(Value::string(encode_utf8(std::u32string_view(&c, 1))));
      return out;
    }
    default: fail(ErrorKind::invalid_argument, "'{}' object is not iterable", type_name(v));
  }
}

Value Interpreter::get_attribute(const Value& object, const std::string& name) {
  if (object.is_undefined()) fail_undefined(object);
  if (object.kind == Kind::dict || object.kind == Kind::ns) {
    if (object.kind == Kind::dict) {
      bool found = false;
      Value method = get_method(object, name, found);
      if (found) return method;
    }
    if (const Value* v = object.dict->find(std::string_view(name))) return *v;
    return missing_attribute(object, name);
  }
  if (object.is_number() && (name == "real" || name == "imag")) {
    if (name == "imag") return object.kind == Kind::floating ? Value::floating(0.0) : Value::integer(0);
    return object.kind == Kind::boolean ? Value::integer(object.as_int()) : object;
  }
  bool found = false;
  Value method = get_method(object, name, found);
  if (found) return method;
  return missing_attribute(object, name);
}

Value Interpreter::get_item(const Value& object, const Value& key) {
  if (object.is_undefined()) fail_undefined(object);
  if (object.kind == Kind::dict) {
    if (const Value* v = object.dict->find(key)) return *v;
  } else if ((object.is_sequence() || object.is_string()) && key.is_integral()) {
    if (object.is_string()) {
      count(object.text().size() / 8);
      const std::u32string chars = decode_utf8(object.text());
      int64_t k = key.as_int();
      if (k < 0) k += int64_t(chars.size());
      if (k >= 0 && k < int64_t(chars.size())) return Value::string(encode_utf8(chars.substr(size_t(k), 1)));
    } else {
      int64_t k = key.as_int();
      if (k < 0) k += int64_t(object.list->size());
      if (k >= 0 && k < int64_t(object.list->size())) return (*object.list)[size_t(k)];
    }
    return missing_element(object, key);
  }
  if (key.is_string()) {
    if (object.kind == Kind::ns) {
      if (const Value* v = object.dict->find(std::string_view(key.text()))) return *v;
    }
    bool found = false;
    Value method = get_method(object, key.text(), found);
    if (found) return method;
  }
  return missing_element(object, key);
}

Value Interpreter::call(const Value& callee, const Args& args) {
  count();
  if (callee.kind == Kind::callable) return callee.fn->call(*this, args);
  if (callee.is_undefined()) fail_undefined(callee);
  fail(ErrorKind::invalid_argument, "'{}' object is not callable", type_name(callee));
}

Args Interpreter::eval_args(const Expr& e, Frame* frame, size_t first) {
  Args args;
  for (size_t k = first; k < e.args.size(); ++k) args.positional.push_back(eval(*e.args[k], frame));
  for (const auto& [key, value] : e.kwargs) args.keyword.emplace_back(key, eval(*value, frame));
  return args;
}

Value Interpreter::eval_slice(const Value& object, const Expr& slice, Frame* frame) {
  int64_t bound[3] = {0, 0, 1};
  bool given[3] = {false, false, false};
  for (int k = 0; k < 3; ++k) {
    if (!slice.args[size_t(k)]) continue;
    const Value v = eval(*slice.args[size_t(k)], frame);
    if (v.is_none()) continue;
    if (!v.is_integral()) {
      fail(ErrorKind::invalid_argument, "slice indices must be integers or None or have an __index__ method");
    }
    bound[k] = v.as_int();
    given[k] = true;
  }
  if (object.is_undefined()) fail_undefined(object);
  if (!object.is_sequence() && !object.is_string()) return Value::undefined("the object cannot be sliced");
  const int64_t step = bound[2];
  if (step == 0) fail(ErrorKind::invalid_argument, "slice step cannot be zero");
  std::u32string chars;
  if (object.is_string()) {
    count(object.text().size() / 8);
    chars = decode_utf8(object.text());
  }
  const int64_t length = object.is_string() ? int64_t(chars.size()) : int64_t(object.list->size());
  auto clamp = [&](int64_t v, bool is_given, int64_t if_absent, bool is_start) {
    if (!is_given) return if_absent;
    if (v < 0) v += length;
    if (step > 0) return std::clamp<int64_t>(v, 0, length);
    (void)is_start;
    return std::clamp<int64_t>(v, -1, length - 1);
  };
  const int64_t start = clamp(bound[0], given[0], step > 0 ? 0 : length - 1, true);
  const int64_t stop = clamp(bound[1], given[1], step > 0 ? length : -1, false);
  std::vector<size_t> picked;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) picked.push_back(size_t(k));
  count(picked.size());
  if (object.is_string()) {
    std::u32string out;
    for (size_t k : picked) out.push_back(chars[k]);
    return Value::string(encode_utf8(out));
  }
  std::vector<Value> out;
  out.reserve(picked.size());
  for (size_t k : picked) out.push_back((*object.list)[k]);
  return object.kind == Kind::tuple ? Value::tuple_of(std::move(out)) : Value::list_of(std::move(out));
}

Value Interpreter::eval(const Expr& e, Frame* frame) {
  count();
  switch (e.kind) {
    case ExprKind::constant: return e.value;
    case ExprKind::name: return lookup(frame, e.name);
    case ExprKind::list:
    case ExprKind::tuple: {
      std::vector<Value> items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(eval(*a, frame));
      return e.kind == ExprKind::list ? Value::list_of(std::move(items)) : Value::tuple_of(std::move(items));
    }
    case ExprKind::dict: {
      DictData d;
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
        Value key = eval(*e.args[k], frame);
        if (key.is_sequence() && key.kind == Kind::list) fail(ErrorKind::invalid_argument, "unhashable type: 'list'");
        if (key.is_mapping()) fail(ErrorKind::invalid_argument, "unhashable type: 'dict'");
        d.set(std::move(key), eval(*e.args[k + 1], frame));
      }
      return Value::dict_of(std::move(d));
    }
    case ExprKind::attribute: return get_attribute(eval(*e.args[0], frame), e.name);
    case ExprKind::item: {
      const Value object = eval(*e.args[0], frame);
      if (e.args[1]->kind == ExprKind::slice) return eval_slice(object, *e.args[1], frame);
      return get_item(object, eval(*e.args[1], frame));
    }
    case ExprKind::slice:
      // only reached inside a tuple key (x[1:2, 3]), which no sequence or mapping accepts
      return Value::undefined("a slice inside a tuple is not a valid key");
    case ExprKind::call: {
      const Value callee = eval(*e.args[0], frame);
      return call(callee, eval_args(e, frame, 1));
    }
    case ExprKind::filter: {
      const Value operand = eval(*e.args[0], frame);
      return apply_filter(*this, e.name, operand, eval_args(e, frame, 1));
    }
    case ExprKind::test: {
      const Value operand = eval(*e.args[0], frame);
      return Value::boolean(apply_test(*this, e.name, operand, eval_args(e, frame, 1)) != e.negated);
    }
    case ExprKind::unary: {
      const Value v = eval(*e.args[0], frame);
      if (v.is_undefined()) fail_undefined(v);
      if (!v.is_number()) fail(ErrorKind::invalid_argument, "bad operand type for unary {}: '{}'", e.name, type_name(v));
      if (e.name == "+") return v.kind == Kind::boolean ? Value::integer(v.as_int()) : v;
      if (v.kind == Kind::floating) return Value::floating(-v.f);
      return Value::integer(checked(sub_overflow, 0, v.as_int()));
    }
    case ExprKind::binary: return eval_binary(e.name, eval(*e.args[0], frame), eval(*e.args[1], frame));
    case ExprKind::concat: {
      std::string out;
      for (const auto& a : e.args) {
        out += to_str(eval(*a, frame));
        check_size(out.size());
      }
      count(out.size() / 8);
      return Value::string(std::move(out));
    }
    case ExprKind::compare: {
      Value left = eval(*e.args[0], frame);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.args[k + 1], frame);
        if (!eval_compare(e.ops[k], left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::logical_and: {
      Value left = eval(*e.args[0], frame);
      return truthy(left) ? eval(*e.args[1], frame) : left;
    }
    case ExprKind::logical_or: {
      Value left = eval(*e.args[0], frame);
      return truthy(left) ? left : eval(*e.args[1], frame);
    }
    case ExprKind::logical_not: return Value::boolean(!truthy(eval(*e.args[0], frame)));
    case ExprKind::conditional:
      if (truthy(eval(*e.args[0], frame))) return eval(*e.args[1], frame);
      if (e.args[2]) return eval(*e.args[2], frame);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was defined.", e.line));
  }
  return Value();
}

bool Interpreter::eval_compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "in" || op == "notin") {
    bool found = false;
    if (b.is_string()) {
      if (a.is_undefined()) fail_undefined(a);
      if (!a.is_string()) {
        fail(ErrorKind::invalid_argument, "'in <string>' requires string as left operand, not {}", type_name(a));
      }
      count(b.text().size() / 8);
      found = b.text().find(a.text()) != std::string::npos;
    } else if (b.is_sequence()) {
      count(b.list->size());
      for (const auto& item : *b.list) {
        if (equals(item, a)) {
          found = true;
          break;
        }
      }
    } else if (b.kind == Kind::dict) {
      count(b.dict->items.size());
      found = b.dict->find(a) != nullptr;
    } else if (!b.is_undefined()) {
      fail(ErrorKind::invalid_argument, "argument of type '{}' is not iterable", type_name(b));
    }
    return op == "in" ? found : !found;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number() && !(a.is_integral() && b.is_integral())) {
    const double x = a.as_double(), y = b.as_double();
    if (op == "<") return x < y;
    if (op == ">") return x > y;
    if (op == "<=") return x <= y;
    return x >= y;
  }
  if (op == "<") return less(a, b, op);
  if (op == ">") return less(b, a, op);
  if (op == "<=") return !less(b, a, op);
  return !less(a, b, op);
}

Value Interpreter::eval_binary(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    const bool ints = a.is_integral() && b.is_integral();
    const int64_t x = a.as_int(), y = b.as_int();
    const double p = a.as_double(), q = b.as_double();
    if (op == "+") return ints ? Value::integer(checked(add_overflow, x, y)) : Value::floating(p + q);
    if (op == "-") return ints ? Value::integer(checked(sub_overflow, x, y)) : Value::floating(p - q);
    if (op == "*") return ints ? Value::integer(checked(mul_overflow, x, y)) : Value::floating(p * q);
    if (op == "/") {
      if (q == 0.0) fail(ErrorKind::invalid_argument, "division by zero");
      return Value::floating(p / q);
    }
    if (op == "//") {
      if (ints) return Value::integer(floor_div(x, y));
      if (q == 0.0) fail(ErrorKind::invalid_argument, "float floor division by zero");
      return Value::floating(std::floor(p / q));
    }
    if (op == "%") {
      if (ints) return Value::integer(floor_mod(x, y));
      if (q == 0.0) fail(ErrorKind::invalid_argument, "float modulo");
      double m = std::fmod(p, q);
      if (m != 0.0 && ((m < 0) != (q < 0))) m += q;
      return Value::floating(m);
    }
    if (op == "**") {
      if (ints && y >= 0) {
        int64_t result = 1, base = x, e = y;
        while (e > 0) {
          if (e & 1) result = checked(mul_overflow, result, base);
          e >>= 1;
          if (e > 0) base = checked(mul_overflow, base, base);
        }
        return Value::integer(result);
      }
      if (p == 0.0 && q < 0) fail(ErrorKind::invalid_argument, "0.0 cannot be raised to a negative power");
      const double v = std::pow(p, q);
      if (std::isnan(v) && !std::isnan(p) && !std::isnan(q)) {
        fail(ErrorKind::unsupported, "a negative number raised to a fractional power gives a complex number");
      }
      return Value::floating(v);
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      check_size(a.text().size() + b.text().size());
      count((a.text().size() + b.text().size()) / 8);
      return Value::string(a.text() + b.text());
    }
    if (a.is_sequence() && a.kind == b.kind) {
      std::vector<Value> items = *a.list;
      count(a.list->size() + b.list->size());
      items.insert(items.end(), b.list->begin(), b.list->end());
      return a.kind == Kind::list ? Value::list_of(std::move(items)) : Value::tuple_of(std::move(items));
    }
  }
  if (op == "*") {
    const bool repeat_a = (a.is_string() || a.is_sequence()) && b.is_integral();
    const bool repeat_b = (b.is_string() || b.is_sequence()) && a.is_integral();
    if (repeat_a || repeat_b) {
      const Value& seq = repeat_a ? a : b;
      const int64_t times = std::max<int64_t>(0, (repeat_a ? b : a).as_int());
      const size_t unit = seq.is_string() ? seq.text().size() : seq.list->size();
      if (unit > 0 && uint64_t(times) > limits_.max_output_bytes / unit) check_size(limits_.max_output_bytes + 1);
      count(unit * size_t(times));
      if (seq.is_string()) {
        std::string out;
        out.reserve(unit * size_t(times));
        for (int64_t k = 0; k < times; ++k) out += seq.text();
        return Value::string(std::move(out));
      }
      std::vector<Value> items;
      for (int64_t k = 0; k < times; ++k) items.insert(items.end(), seq.list->begin(), seq.list->end());
      return seq.kind == Kind::list ? Value::list_of(std::move(items)) : Value::tuple_of(std::move(items));
    }
  }
  if (op == "%" && a.is_string()) return Value::string(percent_format(*this, a.text(), b));
  unsupported_operands(op, a, b);
}

}  // namespace slm::jinja
