// The chat-template interpreter: runs a parsed template over a context, with jinja2's scoping
// (loops, macros and blocks have scopes of their own; `if` does not), its Undefined, and the
// limits of TemplateLimits.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "slm/tokenizer/chat_template.hpp"
#include "slm/tokenizer/jinja_ast.hpp"
#include "slm/tokenizer/jinja_value.hpp"
#include "slm/util/error.hpp"

namespace slm::jinja {

// The error raise_exception() throws: its message is the template's own.
class TemplateRaised : public Error {
 public:
  explicit TemplateRaised(const std::string& message) : Error(ErrorKind::invalid_argument, message) {}
};

struct Frame {
  Frame* parent = nullptr;
  std::unordered_map<std::string, Value> vars;
};

class Interpreter {
 public:
  explicit Interpreter(const TemplateLimits& limits);
  ~Interpreter();

  std::string render(const Program& program, const Value& context);

  // Used by filters, tests and methods.
  Value get_attribute(const Value& object, const std::string& name);
  Value get_item(const Value& object, const Value& key);
  Value call(const Value& callee, const Args& args);
  // Python's iter(): the items of a list, tuple or string, the keys of a dict; nothing for
  // Undefined; fails for anything else.
  std::vector<Value> iterate(const Value& v);
  // Counts `n` steps of work against max_operations.
  void count(size_t n = 1);
  // Fails when a string of this size would pass max_output_bytes.
  void check_size(size_t bytes) const;
  const TemplateLimits& limits() const { return limits_; }
  // The line of the statement that was running when an error was raised.
  int line() const { return line_; }
  // Keeps a namespace's data so that the cycles it may take part in are broken after the render.
  void track(const std::shared_ptr<DictData>& data) { namespaces_.push_back(data); }

  // Runs a macro (or a call block's caller) with `args`; used by MacroFunction.
  Value call_macro(const Stmt& macro, Frame* closure, const Args& args, const Value* caller);

 private:
  enum class Flow { normal, break_loop, continue_loop };

  const TemplateLimits& limits_;
  size_t operations_ = 0;
  size_t iterations_ = 0;
  size_t depth_ = 0;
  int line_ = 0;
  std::vector<std::unique_ptr<Frame>> frames_;
  std::vector<std::weak_ptr<DictData>> namespaces_;

  Frame* new_frame(Frame* parent);
  Value lookup(Frame* frame, const std::string& name) const;
  void assign(Frame* frame, const Target& target, const Value& value);

  Flow exec(const Body& body, Frame* frame, std::string& out);
  Flow exec_stmt(const Stmt& s, Frame* frame, std::string& out);
  Flow exec_for(const Stmt& s, Frame* frame, std::string& out);
  std::string render_body(const Body& body, Frame* frame);
  void append(std::string& out, const std::string& text) const;

  Value eval(const Expr& e, Frame* frame);
  Args eval_args(const Expr& e, Frame* frame, size_t first);
  Value eval_binary(const std::string& op, const Value& a, const Value& b);
  bool eval_compare(const std::string& op, const Value& a, const Value& b);
  Value eval_slice(const Value& object, const Expr& slice, Frame* frame);
  Value apply_filter_chain(const std::vector<ExprPtr>& filters, Value value, Frame* frame);
};

// Filters, tests, methods and global functions (jinja_filters.cpp, jinja_methods.cpp).
bool is_filter(const std::string& name);
bool is_test(const std::string& name);
// Names of jinja2 filters and tests this interpreter does not implement (Error(unsupported)).
bool is_unsupported_filter(const std::string& name);
Value apply_filter(Interpreter& in, const std::string& name, const Value& operand, const Args& args);
bool apply_test(Interpreter& in, const std::string& name, const Value& operand, const Args& args);
// The bound method `name` of a str, list or dict; `found` false when it has none. Methods that
// would change a list or dict give the Undefined the sandbox gives.
Value get_method(const Value& object, const std::string& name, bool& found);
// raise_exception, strftime_now, range, dict, namespace, joiner.
void add_globals(Frame& frame);
// Python's printf-style formatting (`"%s" % x`, the format filter).
std::string percent_format(Interpreter& in, const std::string& format, const Value& args);

}  // namespace slm::jinja
