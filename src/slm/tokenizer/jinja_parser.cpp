// Recursive-descent parser for the Jinja2 subset chat templates use, following jinja2's grammar.
#include <algorithm>
#include <initializer_list>

#include "slm/tokenizer/jinja_ast.hpp"
#include "slm/tokenizer/jinja_lexer.hpp"
#include "slm/util/error.hpp"

namespace slm::jinja {

namespace {

// Nesting limits that keep the parser's (and the interpreter's) recursion shallow.
constexpr int kMaxExprDepth = 100;
constexpr int kMaxBlockDepth = 100;

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::text: return "template text";
    case TokenKind::var_begin: return "'{{'";
    case TokenKind::var_end: return "'}}'";
    case TokenKind::block_begin: return "'{%'";
    case TokenKind::block_end: return "'%}'";
    case TokenKind::name: return "'" + t.value + "'";
    case TokenKind::integer: return "integer " + std::to_string(t.int_value);
    case TokenKind::floating: return "a float";
    case TokenKind::string: return "a string";
    case TokenKind::op: return "'" + t.value + "'";
    case TokenKind::end: return "end of template";
  }
  return "token";
}

bool contains(std::initializer_list<std::string_view> set, std::string_view s) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse_template() {
    Body body = subparse({});
    if (peek().kind != TokenKind::end) error(peek(), "unexpected " + describe(peek()));
    return body;
  }

 private:
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int expr_depth_ = 0;
  int block_depth_ = 0;
  int loop_depth_ = 0;
  // Names read inside the macro or call block being parsed (innermost last).
  std::vector<Stmt*> macro_stack_;

  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool at_op(std::string_view op, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.kind == TokenKind::op && t.value == op;
  }
  bool at_name(std::string_view name, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.kind == TokenKind::name && t.value == name;
  }
  bool skip_op(std::string_view op) {
    if (!at_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!at_name(name)) return false;
    next();
    return true;
  }

  [[noreturn]] void error(const Token& at, const std::string& message) const {
    fail(ErrorKind::format, "chat template line {}, column {}: {}", at.line, at.column, message);
  }
  [[noreturn]] void unsupported(const Token& at, const std::string& message) const {
    fail(ErrorKind::unsupported, "chat template line {}, column {}: {}", at.line, at.column, message);
  }

  void expect_op(std::string_view op) {
    if (!at_op(op)) error(peek(), fmt::format("expected '{}', found {}", op, describe(peek())));
    next();
  }
  std::string expect_name() {
    if (peek().kind != TokenKind::name) error(peek(), "expected a name, found " + describe(peek()));
    return next().value;
  }
  void expect_name(std::string_view name) {
    if (!at_name(name)) error(peek(), fmt::format("expected '{}', found {}", name, describe(peek())));
    next();
  }
  void expect_block_end() {
    if (peek().kind != TokenKind::block_end) error(peek(), "expected '%}', found " + describe(peek()));
    next();
  }

  ExprPtr make(ExprKind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    return e;
  }

  // ---- statements ----

  // Statements up to (not including) a block tag named in `end_tags`, or the end of the template
  // when `end_tags` is empty. Leaves the stream on that tag's name.
  Body subparse(std::initializer_list<std::string_view> end_tags) {
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == TokenKind::end) {
        if (end_tags.size() > 0) error(t, fmt::format("unexpected end of template, expected '{}'", *end_tags.begin()));
        return body;
      }
      if (t.kind == TokenKind::text) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::text;
        s->line = t.line;
        s->text = next().value;
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::var_begin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::output;
        s->line = t.line;
        s->expr = parse_tuple(false, true, {}, false);
        if (peek().kind != TokenKind::var_end) error(peek(), "expected '}}', found " + describe(peek()));
        next();
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::block_begin) {
        next();
        const Token& tag = peek();
        if (tag.kind != TokenKind::name) error(tag, "expected a tag name, found " + describe(tag));
        if (contains(end_tags, tag.value)) return body;
        body.push_back(statement());
      } else {
        error(t, "unexpected " + describe(t));
      }
    }
  }

  // Consumes the '%}' ending a tag header, then parses statements up to one of `end_tags`.
  Body statements(std::initializer_list<std::string_view> end_tags, bool drop_end_tag) {
    expect_block_end();
    if (++block_depth_ > kMaxBlockDepth) error(peek(), fmt::format("blocks nested deeper than {}", kMaxBlockDepth));
    Body body = subparse(end_tags);
    --block_depth_;
    if (drop_end_tag) {
      next();
      expect_block_end();
    }
    return body;
  }

  StmtPtr statement() {
    const Token& tag = peek();
    const std::string name = tag.value;
    auto s = std::make_unique<Stmt>();
    s->line = tag.line;
    next();
    if (name == "if") return if_chain(std::move(s));
    if (name == "for") return for_loop(std::move(s));
    if (name == "set") return set(std::move(s));
    if (name == "macro") return macro(std::move(s));
    if (name == "call") return call_block(std::move(s));
    if (name == "filter") {
      s->kind = StmtKind::filter_block;
      s->filters = filter_chain();
      s->body = statements({"endfilter"}, true);
      return s;
    }
    if (name == "with") return with(std::move(s));
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error(tag, fmt::format("'{}' outside of a loop", name));
      s->kind = name == "break" ? StmtKind::loop_break : StmtKind::loop_continue;
      expect_block_end();
      return s;
    }
    if (name == "generation") {
      s->kind = StmtKind::scope;
      s->body = statements({"endgeneration"}, true);
      return s;
    }
    if (contains({"extends", "block", "include", "import", "from", "autoescape", "do", "trans", "pluralize", "debug"}, name)) {
      unsupported(tag, fmt::format("the '{}' tag is not supported", name));
    }
    error(tag, fmt::format("unknown tag '{}'", name));
  }

  StmtPtr if_chain(StmtPtr s) {
    s->kind = StmtKind::if_chain;
    while (true) {
      ExprPtr condition = parse_tuple(false, false, {}, false);
      Body body = statements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(condition), std::move(body));
      const std::string tag = next().value;
      if (tag == "elif") continue;
      if (tag == "else") s->else_body = statements({"endif"}, true);
      else expect_block_end();
      return s;
    }
  }

  StmtPtr for_loop(StmtPtr s) {
    s->kind = StmtKind::for_loop;
    s->target = assign_target(true, false, {"in"});
    expect_name("in");
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->condition = parse_expression(true);
    if (at_name("recursive")) unsupported(peek(), "recursive loops are not supported");
    ++loop_depth_;
    s->body = statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().value == "else") {
      s->else_body = statements({"endfor"}, true);
    } else {
      expect_block_end();
    }
    return s;
  }

  StmtPtr set(StmtPtr s) {
    s->target = assign_target(true, true, {});
    if (skip_op("=")) {
      s->kind = StmtKind::set;
      s->expr = parse_tuple(false, true, {}, false);
      expect_block_end();
      return s;
    }
    s->kind = StmtKind::set_block;
    if (at_op("|")) {
      next();
      s->filters = filter_chain();
    }
    s->body = statements({"endset"}, true);
    return s;
  }

  void signature(Stmt& s) {
    expect_op("(");
    while (!at_op(")")) {
      if (!s.params.empty()) expect_op(",");
      s.params.push_back(expect_name());
      if (skip_op("=")) {
        s.defaults.push_back(parse_expression(true));
      } else {
        if (std::any_of(s.defaults.begin(), s.defaults.end(), [](const ExprPtr& d) { return d != nullptr; })) {
          error(peek(), "non-default argument follows default argument");
        }
        s.defaults.push_back(nullptr);
      }
    }
    expect_op(")");
  }

  // The body of a macro or call block: loops outside it do not enclose it.
  Body function_body(Stmt& s, std::string_view end_tag) {
    const int loops = loop_depth_;
    loop_depth_ = 0;
    macro_stack_.push_back(&s);
    Body body = statements({end_tag}, true);
    macro_stack_.pop_back();
    loop_depth_ = loops;
    return body;
  }

  StmtPtr macro(StmtPtr s) {
    s->kind = StmtKind::macro;
    s->name = expect_name();
    signature(*s);
    s->body = function_body(*s, "endmacro");
    return s;
  }

  StmtPtr call_block(StmtPtr s) {
    s->kind = StmtKind::call_block;
    if (at_op("(")) signature(*s);
    const Token& at = peek();
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::call) error(at, "expected a call after 'call'");
    s->body = function_body(*s, "endcall");
    return s;
  }

  StmtPtr with(StmtPtr s) {
    s->kind = StmtKind::with;
    while (peek().kind != TokenKind::block_end) {
      if (!s->assignments.empty()) expect_op(",");
      Target target = assign_target(true, false, {});
      expect_op("=");
      s->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    s->body = statements({"endwith"}, true);
    return s;
  }

  Target assign_target(bool with_tuple, bool with_namespace, std::initializer_list<std::string_view> end_rules) {
    const Token& at = peek();
    if (with_namespace && at.kind == TokenKind::name && at_op(".", 1) && peek(2).kind == TokenKind::name) {
      Target t;
      t.kind = Target::Kind::attribute;
      t.name = next().value;
      next();
      t.attribute = next().value;
      return t;
    }
    ExprPtr e = with_tuple ? parse_tuple(true, true, end_rules, false) : primary();
    return to_target(*e, at);
  }

  Target to_target(const Expr& e, const Token& at) {
    Target t;
    if (e.kind == ExprKind::name) {
      t.name = e.name;
      return t;
    }
    if (e.kind == ExprKind::tuple) {
      t.kind = Target::Kind::tuple;
      for (const auto& item : e.args) t.items.push_back(to_target(*item, at));
      return t;
    }
    error(at, "can't assign to this expression");
  }

  // `| name(args) | name ...` after the first '|' (already consumed).
  std::vector<ExprPtr> filter_chain() {
    std::vector<ExprPtr> chain;
    do {
      chain.push_back(filter_call(nullptr));
    } while (skip_op("|"));
    return chain;
  }

  // ---- expressions ----

  ExprPtr parse_expression(bool with_condexpr) {
    if (++expr_depth_ > kMaxExprDepth) error(peek(), fmt::format("expressions nested deeper than {}", kMaxExprDepth));
    ExprPtr e = with_condexpr ? condexpr() : logical_or();
    --expr_depth_;
    return e;
  }

  bool at_tuple_end(std::initializer_list<std::string_view> end_rules) const {
    const Token& t = peek();
    if (t.kind == TokenKind::var_end || t.kind == TokenKind::block_end || at_op(")")) return true;
    return t.kind == TokenKind::name && contains(end_rules, t.value);
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::initializer_list<std::string_view> end_rules,
                      bool explicit_parentheses) {
    const Token& start = peek();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (at_tuple_end(end_rules)) break;
      items.push_back(simplified ? primary() : parse_expression(with_condexpr));
      if (at_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) error(peek(), "expected an expression, found " + describe(peek()));
    }
    ExprPtr e = make(ExprKind::tuple, start);
    e->args = std::move(items);
    return e;
  }

  ExprPtr condexpr() {
    ExprPtr e = logical_or();
    while (at_name("if")) {
      const Token& at = next();
      ExprPtr test = logical_or();
      ExprPtr otherwise = skip_name("else") ? condexpr() : nullptr;
      ExprPtr c = make(ExprKind::conditional, at);
      c->args.push_back(std::move(test));
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(otherwise));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(ExprKind kind, const Token& at, ExprPtr left, ExprPtr right, std::string op = {}) {
    ExprPtr e = make(kind, at);
    e->name = std::move(op);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return e;
  }

  ExprPtr logical_or() {
    ExprPtr e = logical_and();
    while (at_name("or")) {
      const Token& at = next();
      e = binary(ExprKind::logical_or, at, std::move(e), logical_and());
    }
    return e;
  }

  ExprPtr logical_and() {
    ExprPtr e = logical_not();
    while (at_name("and")) {
      const Token& at = next();
      e = binary(ExprKind::logical_and, at, std::move(e), logical_not());
    }
    return e;
  }

  ExprPtr logical_not() {
    if (at_name("not")) {
      const Token& at = next();
      if (++expr_depth_ > kMaxExprDepth) error(at, fmt::format("expressions nested deeper than {}", kMaxExprDepth));
      ExprPtr e = make(ExprKind::logical_not, at);
      e->args.push_back(logical_not());
      --expr_depth_;
      return e;
    }
    return compare();
  }

  ExprPtr compare() {
    const Token& start = peek();
    ExprPtr first = math1();
    ExprPtr e;
    while (true) {
      std::string op;
      const Token& t = peek();
      if (t.kind == TokenKind::op && contains({"==", "!=", "<", ">", "<=", ">="}, t.value)) {
        op = t.value;
        next();
      } else if (at_name("in")) {
        op = "in";
        next();
      } else if (at_name("not") && at_name("in", 1)) {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!e) {
        e = make(ExprKind::compare, start);
        e->args.push_back(std::move(first));
      }
      e->ops.push_back(op);
      e->args.push_back(math1());
    }
    return e ? std::move(e) : std::move(first);
  }

  ExprPtr math1() {
    ExprPtr e = concat();
    while (at_op("+") || at_op("-")) {
      const Token& at = next();
      e = binary(ExprKind::binary, at, std::move(e), concat(), at.value);
    }
    return e;
  }

  ExprPtr concat() {
    const Token& start = peek();
    ExprPtr first = math2();
    if (!at_op("~")) return first;
    ExprPtr e = make(ExprKind::concat, start);
    e->args.push_back(std::move(first));
    while (skip_op("~")) e->args.push_back(math2());
    return e;
  }

  ExprPtr math2() {
    ExprPtr e = power();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Token& at = next();
      e = binary(ExprKind::binary, at, std::move(e), power(), at.value);
    }
    return e;
  }

  ExprPtr power() {
    ExprPtr e = unary(true);
    while (at_op("**")) {
      const Token& at = next();
      e = binary(ExprKind::binary, at, std::move(e), unary(true), "**");
    }
    return e;
  }

  ExprPtr unary(bool with_filter) {
    const Token& at = peek();
    ExprPtr e;
    if (at_op("-") || at_op("+")) {
      next();
      if (++expr_depth_ > kMaxExprDepth) error(at, fmt::format("expressions nested deeper than {}", kMaxExprDepth));
      e = make(ExprKind::unary, at);
      e->name = at.value;
      e->args.push_back(unary(false));
      --expr_depth_;
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filter_expr(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& t = peek();
    switch (t.kind) {
      case TokenKind::name: {
        next();
        ExprPtr e = make(ExprKind::constant, t);
        if (t.value == "true" || t.value == "True") {
          e->value = Value::boolean(true);
        } else if (t.value == "false" || t.value == "False") {
          e->value = Value::boolean(false);
        } else if (t.value == "none" || t.value == "None") {
          e->value = Value::none();
        } else {
          e->kind = ExprKind::name;
          e->name = t.value;
          for (Stmt* m : macro_stack_) {
            if (t.value == "varargs") m->uses_varargs = true;
            if (t.value == "kwargs") m->uses_kwargs = true;
            if (t.value == "caller") m->uses_caller = true;
          }
        }
        return e;
      }
      case TokenKind::string: {
        std::string text;
        while (peek().kind == TokenKind::string) text += next().value;
        ExprPtr e = make(ExprKind::constant, t);
        e->value = Value::string(std::move(text));
        return e;
      }
      case TokenKind::integer: {
        next();
        ExprPtr e = make(ExprKind::constant, t);
        e->value = Value::integer(t.int_value);
        return e;
      }
      case TokenKind::floating: {
        next();
        ExprPtr e = make(ExprKind::constant, t);
        e->value = Value::floating(t.float_value);
        return e;
      }
      default: break;
    }
    if (at_op("(")) {
      next();
      ExprPtr e = nested([&] { return parse_tuple(false, true, {}, true); });
      expect_op(")");
      return e;
    }
    if (at_op("[")) return nested([&] { return list(); });
    if (at_op("{")) return nested([&] { return dict(); });
    error(t, "unexpected " + describe(t));
  }

  template <typename F>
  ExprPtr nested(F&& parse) {
    if (++expr_depth_ > kMaxExprDepth) error(peek(), fmt::format("expressions nested deeper than {}", kMaxExprDepth));
    ExprPtr e = parse();
    --expr_depth_;
    return e;
  }

  ExprPtr list() {
    ExprPtr e = make(ExprKind::list, next());
    while (!at_op("]")) {
      if (!e->args.empty()) expect_op(",");
      if (at_op("]")) break;
      e->args.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  ExprPtr dict() {
    ExprPtr e = make(ExprKind::dict, next());
    while (!at_op("}")) {
      if (!e->args.empty()) expect_op(",");
      if (at_op("}")) break;
      e->args.push_back(parse_expression(true));
      expect_op(":");
      e->args.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (at_op(".") || at_op("[")) {
        e = subscript(std::move(e));
      } else if (at_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr filter_expr(ExprPtr e) {
    while (true) {
      if (at_op("|")) {
        next();
        e = filter_call(std::move(e));
      } else if (at_name("is")) {
        e = test(std::move(e));
      } else if (at_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr object) {
    const Token& t = next();
    if (t.value == ".") {
      const Token& attr = next();
      if (attr.kind == TokenKind::name) {
        ExprPtr e = make(ExprKind::attribute, t);
        e->name = attr.value;
        e->args.push_back(std::move(object));
        return e;
      }
      if (attr.kind == TokenKind::integer) {
        ExprPtr key = make(ExprKind::constant, attr);
        key->value = Value::integer(attr.int_value);
        return binary(ExprKind::item, t, std::move(object), std::move(key));
      }
      error(attr, "expected a name or number after '.', found " + describe(attr));
    }
    std::vector<ExprPtr> keys;
    while (!at_op("]")) {
      if (!keys.empty()) expect_op(",");
      keys.push_back(nested([&] { return subscribed(); }));
    }
    expect_op("]");
    if (keys.empty()) error(t, "expected a subscript");
    ExprPtr key;
    if (keys.size() == 1) {
      key = std::move(keys[0]);
    } else {
      key = make(ExprKind::tuple, t);
      key->args = std::move(keys);
    }
    return binary(ExprKind::item, t, std::move(object), std::move(key));
  }

  ExprPtr subscribed() {
    const Token& start = peek();
    ExprPtr first;
    if (!at_op(":")) {
      first = parse_expression(true);
      if (!at_op(":")) return first;
    }
    next();  // ':'
    ExprPtr e = make(ExprKind::slice, start);
    e->args.push_back(std::move(first));
    e->args.push_back(at_op("]") || at_op(",") || at_op(":") ? nullptr : parse_expression(true));
    if (skip_op(":")) {
      e->args.push_back(at_op("]") || at_op(",") ? nullptr : parse_expression(true));
    } else {
      e->args.push_back(nullptr);
    }
    return e;
  }

  // Call arguments after '(' (the stream is on it): positional then name=value.
  void call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!at_op(")")) {
      if (!first) {
        expect_op(",");
        if (at_op(")")) break;
      }
      first = false;
      if (at_op("*") || at_op("**")) unsupported(peek(), "'*' and '**' arguments are not supported");
      if (peek().kind == TokenKind::name && at_op("=", 1)) {
        for (const auto& kw : e.kwargs) {
          if (kw.first == peek().value) error(peek(), "keyword argument repeated: " + kw.first);
        }
        std::string key = next().value;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error(peek(), "positional argument follows keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprPtr call(ExprPtr callee) {
    ExprPtr e = make(ExprKind::call, peek());
    e->args.push_back(std::move(callee));
    call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (at_op(".") && peek(1).kind == TokenKind::name) {
      next();
      name += "." + next().value;
    }
    return name;
  }

  ExprPtr filter_call(ExprPtr operand) {
    const Token& at = peek();
    ExprPtr e = make(ExprKind::filter, at);
    e->name = dotted_name();
    e->args.push_back(std::move(operand));
    if (at_op("(")) call_args(*e);
    return e;
  }

  ExprPtr test(ExprPtr operand) {
    const Token& at = next();  // 'is'
    ExprPtr e = make(ExprKind::test, at);
    e->negated = skip_name("not");
    e->name = dotted_name();
    e->args.push_back(std::move(operand));
    const Token& t = peek();
    if (at_op("(")) {
      call_args(*e);
    } else if ((t.kind == TokenKind::name || t.kind == TokenKind::string || t.kind == TokenKind::integer ||
                t.kind == TokenKind::floating || at_op("[") || at_op("{")) &&
               !(at_name("else") || at_name("or") || at_name("and"))) {
      if (at_name("is")) error(t, "you cannot chain multiple tests with 'is'");
      e->args.push_back(postfix(primary()));
    }
    return e;
  }
};

}  // namespace

std::shared_ptr<const Program> parse_program(std::string_view source) {
  Parser parser(lex(source));
  auto program = std::make_shared<Program>();
  program->body = parser.parse_template();
  return program;
}

}  // namespace slm::jinja
