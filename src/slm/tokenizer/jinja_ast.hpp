// The syntax tree of a parsed chat template: expressions and statements, as jinja2's parser
// builds them (operator precedence, filters and tests binding tighter than arithmetic, ...).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "slm/tokenizer/jinja_value.hpp"

namespace slm::jinja {

enum class ExprKind : uint8_t {
  constant,     // value
  name,         // name
  list,         // args: items
  tuple,        // args: items
  dict,         // args: key0, value0, key1, value1, ...
  attribute,    // args[0].name
  item,         // args[0][args[1]]
  slice,        // as an item key: args = start, stop, step (each may be null)
  call,         // args[0](args[1..], kwargs)
  filter,       // args[0] | name(args[1..], kwargs); args[0] is null in filter blocks
  test,         // args[0] is [not] name(args[1..], kwargs)
  unary,        // name ("-", "+") args[0]
  binary,       // args[0] name args[1]: + - * / // % **
  concat,       // args[0] ~ args[1] ~ ...
  compare,      // args[0] ops[0] args[1] ops[1] args[2] ...: == != < > <= >= in notin
  logical_and,  // args[0] and args[1]
  logical_or,   // args[0] or args[1]
  logical_not,  // not args[0]
  conditional,  // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::constant;
  int line = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

// What `set`, `for` and `with` assign to.
struct Target {
  enum class Kind : uint8_t { name, tuple, attribute } kind = Kind::name;
  std::string name;             // name; attribute: the namespace's name
  std::string attribute;        // attribute
  std::vector<Target> items;    // tuple
};

enum class StmtKind : uint8_t {
  text,          // text
  output,        // {{ expr }}
  if_chain,      // branches, else_body
  for_loop,      // for target in expr [if condition]: body, else_body
  set,           // target = expr
  set_block,     // {% set target | filters %}body{% endset %}
  macro,         // name(params = defaults): body
  call_block,    // {% call(params) expr %}body{% endcall %}
  filter_block,  // {% filter filters %}body{% endfilter %}
  with,          // assignments, body
  loop_break,
  loop_continue,
  scope,         // body in a scope of its own ({% generation %})
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  StmtKind kind = StmtKind::text;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param, null where none
  std::vector<ExprPtr> filters;   // filter expressions whose args[0] is null
  std::vector<std::pair<Target, ExprPtr>> assignments;
  // Macros and call blocks: whether the body names these, which decides whether extra arguments
  // are accepted (as jinja2 decides it).
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;
};

struct Program {
  Body body;
};

// Parses a template; fails with Error(format) "chat template line L, column C: ..." on syntax
// errors and Error(unsupported) on constructs this interpreter does not have.
std::shared_ptr<const Program> parse_program(std::string_view source);

}  // namespace slm::jinja
