#include "slm/engine/grammar/matcher.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace slm::grammar {
namespace {

enum ObjectPhase : int32_t { obj_open, obj_first, obj_key, obj_colon, obj_value_ws, obj_after_value, obj_comma_ws };
enum ArrayPhase : int32_t { arr_open, arr_first, arr_after_value = 5, arr_comma_ws = 6 };

constexpr double kPow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }

// Some t in [x, y) (negative: in (-y, -x]) lies within the bounds.
bool dense_ok(const Node& n, bool negative, double x, double y) {
  if (!negative) {
    double t = x;
    bool strict = false;
    if (n.has_min && (n.minimum > x || (n.minimum == x && n.exclusive_min))) {
      t = n.minimum;
      strict = n.exclusive_min;
    }
    if (t >= y) return false;
    if (n.has_max) return (strict || n.exclusive_max) ? t < n.maximum : t <= n.maximum;
    return true;
  }
  double t = -x;
  bool strict = false;
  if (n.has_max && (n.maximum < t || (n.maximum == t && n.exclusive_max))) {
    t = n.maximum;
    strict = n.exclusive_max;
  }
  if (t <= -y) return false;
  if (n.has_min) return (strict || n.exclusive_min) ? t > n.minimum : t >= n.minimum;
  return true;
}

// Some integer in [a, b] (negative: in [-b, -a]) lies within the bounds.
bool integers_ok(const Node& n, bool negative, double a, double b) {
  if (negative) {
    const double t = a;
    a = -b;
    b = -t;
  }
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  if (n.has_min) lo = n.exclusive_min ? std::floor(n.minimum) + 1 : std::ceil(n.minimum);
  if (n.has_max) hi = n.exclusive_max ? std::ceil(n.maximum) - 1 : std::floor(n.maximum);
  return std::max(a, lo) <= std::min(b, hi);
}

}  // namespace

bool number_in_bounds(const Node& n, double v) {
  if (n.has_min && (n.exclusive_min ? !(v > n.minimum) : !(v >= n.minimum))) return false;
  if (n.has_max && (n.exclusive_max ? !(v < n.maximum) : !(v <= n.maximum))) return false;
  return true;
}

bool number_feasible(const Node& n, int32_t phase, bool negative, int64_t mantissa, int32_t digits, int32_t frac_digits) {
  if (!n.bounded()) return true;
  const int32_t left = kMaxNumberDigits - digits;
  const double m = double(mantissa);
  const double sign = negative ? -1.0 : 1.0;
  switch (phase) {
    case num_start: return true;
    case num_minus:
      return n.integer ? integers_ok(n, true, 0, 1e300) : dense_ok(n, true, 0, 1e300) || number_in_bounds(n, 0.0);
    case num_zero:
      if (number_in_bounds(n, 0.0)) return true;
      return !n.integer && left >= 1 && dense_ok(n, negative, 0, 1);
    case num_int:
      if (number_in_bounds(n, sign * m)) return true;
      if (!n.integer && left >= 1 && dense_ok(n, negative, m, m + 1)) return true;
      for (int32_t k = 1; k <= left; ++k) {
        const double a = m * kPow10[k], b = (m + 1) * kPow10[k];
        if (n.integer ? integers_ok(n, negative, a, b - 1) : dense_ok(n, negative, a, b)) return true;
      }
      return false;
    case num_dot: return left >= 1 && dense_ok(n, negative, m, m + 1);
    case num_frac: {
      const double v = m / kPow10[frac_digits];
      if (number_in_bounds(n, sign * v)) return true;
      return left >= 1 && dense_ok(n, negative, v, v + 1.0 / kPow10[frac_digits]);
    }
    default: return true;
  }
}

int32_t Matcher::push(int32_t parent, Frame f) {
  f.parent = parent;
  f.depth = parent < 0 ? 0 : arena_[size_t(parent)].depth + 1;
  if (f.depth > g_.max_depth) return -1;
  arena_.push_back(f);
  return int32_t(arena_.size()) - 1;
}

int32_t Matcher::replace(int32_t top, Frame f) {
  f.parent = arena_[size_t(top)].parent;
  f.depth = arena_[size_t(top)].depth;
  arena_.push_back(f);
  return int32_t(arena_.size()) - 1;
}

int32_t Matcher::initial() {
  Frame f;
  f.node = 0;
  return push(-1, f);
}

int32_t Matcher::load(const std::vector<Frame>& stack) {
  int32_t top = -1;
  for (const Frame& f : stack) top = push(top, f);
  return top;
}

std::vector<Frame> Matcher::save(int32_t top) const {
  std::vector<Frame> out;
  for (int32_t i = top; i >= 0; i = arena_[size_t(i)].parent) out.push_back(arena_[size_t(i)]);
  std::reverse(out.begin(), out.end());
  return out;
}

void Matcher::start_value(int32_t parent, int32_t node, uint8_t byte, std::vector<int32_t>& out) {
  if (parent < 0) return;
  const Node& n = g_.nodes[size_t(node)];
  if (n.kind == NodeKind::any_of) {
    for (int32_t alt : n.alternatives) start_value(parent, alt, byte, out);
    return;
  }
  if (n.min_depth >= Node::kNoInstance) return;
  if (int64_t(arena_[size_t(parent)].depth) + n.min_depth > g_.max_depth) return;
  Frame f;
  f.node = node;
  const int32_t top = push(parent, f);
  if (top >= 0) feed(top, byte, out);
}

void Matcher::pop_and_feed(int32_t top, uint8_t byte, std::vector<int32_t>& out) {
  feed(arena_[size_t(top)].parent, byte, out);
}

bool Matcher::key_possible(const Node& n, int32_t i) const {
  if (n.additional >= 0) return true;
  if (size_t(i) >= n.properties.size()) return false;
  const auto& below = n.keys.nodes[0].below;  // the properties that can be written
  const auto it = std::lower_bound(below.begin(), below.end(), i);
  return it != below.end() && *it <= n.next_required[size_t(i)];
}

void Matcher::feed(int32_t top, uint8_t byte, std::vector<int32_t>& out) {
  if (top < 0) return;
  const Frame f = arena_[size_t(top)];
  const Node& n = g_.nodes[size_t(f.node)];
  switch (n.kind) {
    case NodeKind::root:
      if (f.phase == 0) {
        Frame done = f;
        done.phase = 1;
        start_value(replace(top, done), n.child, byte, out);
      }
      return;
    case NodeKind::any_of:
      return;  // never materialized (start_value expands it)
    case NodeKind::literals: {
      const int32_t t = n.literals.child(f.a, byte);
      if (t >= 0) {
        const auto& tn = n.literals.nodes[size_t(t)];
        if (tn.terminal >= 0 && tn.children.empty()) {
          out.push_back(f.parent);
        } else {
          Frame g = f;
          g.a = t;
          out.push_back(replace(top, g));
        }
      }
      if (n.literals.nodes[size_t(f.a)].terminal >= 0) pop_and_feed(top, byte, out);
      return;
    }
    case NodeKind::string: {
      if (f.phase == 0) {
        if (byte != '"') return;
        Frame g = f;
        g.phase = 1;
        g.a = n.dfa->start;
        g.b = 0;
        out.push_back(replace(top, g));
        return;
      }
      const int32_t t = n.dfa->step(f.a, byte);
      if (t == StringDfa::kClose) {
        if (n.dfa->accepting[size_t(f.a)] && f.b >= n.min_length) out.push_back(f.parent);
        return;
      }
      if (t == StringDfa::kDead) return;
      const int32_t q = t >> 1, count = f.b + (t & 1);
      if (n.max_length >= 0 && int64_t(count) + n.dfa->min_chars[size_t(q)] > n.max_length) return;
      if (int64_t(count) + n.dfa->max_chars[size_t(q)] < n.min_length) return;
      Frame g = f;
      g.a = q;
      g.b = count;
      out.push_back(replace(top, g));
      return;
    }
    case NodeKind::number: return feed_number(top, byte, out);
    case NodeKind::object: return f.phase == obj_key ? feed_key(top, byte, out) : feed_object(top, byte, out);
    case NodeKind::array: return feed_array(top, byte, out);
  }
}

void Matcher::feed_object(int32_t top, uint8_t byte, std::vector<int32_t>& out) {
  const Frame f = arena_[size_t(top)];
  const Node& n = g_.nodes[size_t(f.node)];
  const int32_t size = int32_t(n.properties.size());
  auto open_key = [&]() {
    Frame wait = f;
    wait.phase = obj_colon;
    wait.b = -2;
    wait.c = 0;
    const int32_t parent = replace(top, wait);
    Frame key;
    key.node = f.node;
    key.phase = obj_key;
    key.a = n.properties.empty() ? -1 : 0;
    key.b = g_.key_dfa->start;
    const int32_t k = push(parent, key);
    if (k >= 0) out.push_back(k);
  };
  switch (f.phase) {
    case obj_open:
      if (byte == '{') {
        Frame g = f;
        g.phase = obj_first;
        g.a = 0;
        out.push_back(replace(top, g));
      }
      return;
    case obj_first:
    case obj_comma_ws:
      if (byte == '"' && key_possible(n, f.a)) return open_key();
      if (f.phase == obj_first && byte == '}' && n.next_required[size_t(f.a)] == size) out.push_back(f.parent);
      if (f.phase == obj_comma_ws && byte == ' ' && f.c == 0) {
        Frame g = f;
        g.c = 1;
        out.push_back(replace(top, g));
      }
      return;
    case obj_colon:
      if (byte == ':') {
        Frame g = f;
        g.phase = obj_value_ws;
        g.c = 0;
        out.push_back(replace(top, g));
      }
      return;
    case obj_value_ws: {
      if (byte == ' ' && f.c == 0) {
        Frame g = f;
        g.c = 1;
        out.push_back(replace(top, g));
        return;
      }
      const int32_t j = f.b;
      Frame g = f;
      g.phase = obj_after_value;
      g.a = j >= 0 ? j + 1 : f.a;
      g.c = 0;
      start_value(replace(top, g), j >= 0 ? n.properties[size_t(j)].value : n.additional, byte, out);
      return;
    }
    case obj_after_value:
      if (byte == ',' && key_possible(n, f.a)) {
        Frame g = f;
        g.phase = obj_comma_ws;
        g.c = 0;
        out.push_back(replace(top, g));
      } else if (byte == '}' && n.next_required[size_t(f.a)] == size) {
        out.push_back(f.parent);
      }
      return;
    default: return;
  }
}

void Matcher::feed_key(int32_t top, uint8_t byte, std::vector<int32_t>& out) {
  const Frame k = arena_[size_t(top)];
  const Frame p = arena_[size_t(k.parent)];
  const Node& n = g_.nodes[size_t(k.node)];
  const int32_t i = p.a;
  const int32_t last = std::min<int32_t>(n.next_required[size_t(i)], int32_t(n.properties.size()) - 1);
  auto candidate = [&](int32_t j) { return j >= i && j <= last; };
  auto close = [&](int32_t j) {
    Frame g = p;
    g.phase = obj_colon;
    g.b = j;
    out.push_back(replace(k.parent, g));
  };
  if (n.additional < 0) {
    if (byte == '"') {
      const int32_t j = n.keys.nodes[size_t(k.a)].terminal;
      if (j >= 0 && candidate(j)) close(j);
      return;
    }
    const int32_t t = n.keys.child(k.a, byte);
    if (t < 0) return;
    const auto& below = n.keys.nodes[size_t(t)].below;
    const auto it = std::lower_bound(below.begin(), below.end(), i);
    if (it == below.end() || *it > last) return;
    Frame g = k;
    g.a = t;
    out.push_back(replace(top, g));
    return;
  }
  const int32_t t = g_.key_dfa->step(k.b, byte);
  if (t == StringDfa::kClose) {
    const int32_t j = k.a >= 0 ? n.keys.nodes[size_t(k.a)].terminal : -1;
    if (j < 0) close(-1);
    else if (candidate(j)) close(j);
    return;
  }
  if (t == StringDfa::kDead) return;
  Frame g = k;
  g.a = k.a >= 0 ? n.keys.child(k.a, byte) : -1;
  g.b = t >> 1;
  out.push_back(replace(top, g));
}

void Matcher::feed_array(int32_t top, uint8_t byte, std::vector<int32_t>& out) {
  const Frame f = arena_[size_t(top)];
  const Node& n = g_.nodes[size_t(f.node)];
  auto item = [&](int32_t count) {
    Frame g = f;
    g.phase = arr_after_value;
    g.a = count;
    g.c = 0;
    start_value(replace(top, g), n.child, byte, out);
  };
  switch (f.phase) {
    case arr_open:
      if (byte == '[') {
        Frame g = f;
        g.phase = arr_first;
        g.a = 0;
        out.push_back(replace(top, g));
      }
      return;
    case arr_first:
      if (byte == ']') {
        if (n.min_items == 0) out.push_back(f.parent);
        return;
      }
      if (n.max_items != 0) item(1);
      return;
    case arr_after_value:
      if (byte == ',' && (n.max_items < 0 || f.a < n.max_items)) {
        Frame g = f;
        g.phase = arr_comma_ws;
        g.c = 0;
        out.push_back(replace(top, g));
      } else if (byte == ']' && f.a >= n.min_items) {
        out.push_back(f.parent);
      }
      return;
    case arr_comma_ws:
      if (byte == ' ' && f.c == 0) {
        Frame g = f;
        g.c = 1;
        out.push_back(replace(top, g));
        return;
      }
      item(f.a + 1);
      return;
    default: return;
  }
}

void Matcher::feed_number(int32_t top, uint8_t byte, std::vector<int32_t>& out) {
  const Frame f = arena_[size_t(top)];
  const Node& n = g_.nodes[size_t(f.node)];
  const bool negative = (f.c & 1) != 0;
  const int32_t exp_digits = f.c >> 1;
  const bool exp_ok = !n.integer && !n.bounded();
  const int32_t d = is_digit(byte) ? byte - '0' : -1;
  Frame g = f;
  bool next = false;
  auto to = [&](int32_t phase) { g.phase = phase; next = true; };
  switch (f.phase) {
    case num_start:
      if (byte == '-') { g.c = 1; to(num_minus); }
      else if (d == 0) { g.a = 1; to(num_zero); }
      else if (d > 0) { g.m = d; g.a = 1; to(num_int); }
      break;
    case num_minus:
      if (d == 0) { g.a = 1; to(num_zero); }
      else if (d > 0) { g.m = d; g.a = 1; to(num_int); }
      break;
    case num_zero:
    case num_int:
      if (byte == '.' && !n.integer && f.a < kMaxNumberDigits) to(num_dot);
      else if ((byte == 'e' || byte == 'E') && exp_ok) to(num_e);
      else if (f.phase == num_int && d >= 0 && f.a < kMaxNumberDigits) { g.m = f.m * 10 + d; g.a = f.a + 1; to(num_int); }
      break;
    case num_dot:
    case num_frac:
      if (d >= 0 && f.a < kMaxNumberDigits) { g.m = f.m * 10 + d; g.a = f.a + 1; g.b = f.b + 1; to(num_frac); }
      else if (f.phase == num_frac && (byte == 'e' || byte == 'E') && exp_ok) to(num_e);
      break;
    case num_e:
      if (byte == '+' || byte == '-') to(num_e_sign);
      else if (d >= 0) { g.c = (f.c & 1) | (1 << 1); to(num_exp); }
      break;
    case num_e_sign:
      if (d >= 0) { g.c = (f.c & 1) | (1 << 1); to(num_exp); }
      break;
    case num_exp:
      if (d >= 0 && exp_digits < kMaxExponentDigits) { g.c = (f.c & 1) | ((exp_digits + 1) << 1); to(num_exp); }
      break;
    default: break;
  }
  if (next && number_feasible(n, g.phase, (g.c & 1) != 0, g.m, g.a, g.b)) out.push_back(replace(top, g));
  const bool complete = f.phase == num_zero || f.phase == num_int || f.phase == num_frac || f.phase == num_exp;
  const bool in_bounds = !n.bounded() || number_in_bounds(n, (negative ? -1.0 : 1.0) * double(f.m) / kPow10[f.b]);
  if (complete && in_bounds && !(d >= 0 || byte == '.' || byte == 'e' || byte == 'E' || byte == '-' || byte == '+')) {
    pop_and_feed(top, byte, out);
  }
}

bool Matcher::can_end(int32_t top) const {
  while (top >= 0) {
    const Frame& f = arena_[size_t(top)];
    const Node& n = g_.nodes[size_t(f.node)];
    switch (n.kind) {
      case NodeKind::root: return f.phase == 1;
      case NodeKind::literals:
        if (n.literals.nodes[size_t(f.a)].terminal < 0) return false;
        break;
      case NodeKind::number: {
        if (f.phase != num_zero && f.phase != num_int && f.phase != num_frac && f.phase != num_exp) return false;
        if (n.bounded()) {
          const double v = double(f.m) / kPow10[f.b];
          if (!number_in_bounds(n, (f.c & 1) ? -v : v)) return false;
        }
        break;
      }
      default: return false;
    }
    top = f.parent;
  }
  return false;
}

bool Matcher::string_content(int32_t top, StringContent& out) const {
  const Frame& f = arena_[size_t(top)];
  const Node& n = g_.nodes[size_t(f.node)];
  // A pattern with a longest match and a minLength needs the exact walk (content tokens could
  // otherwise lead where minLength can no longer be reached).
  if (n.kind == NodeKind::string && f.phase == 1 && !(n.min_length > 0 && n.dfa->max_chars[size_t(n.dfa->start)] != INT32_MAX)) {
    out = StringContent{n.dfa.get(), f.a, f.b, n.min_length, n.max_length};
    return true;
  }
  if (n.kind == NodeKind::object && f.phase == obj_key && n.additional >= 0) {
    out = StringContent{g_.key_dfa.get(), f.b, 0, 0, -1, f.a, &n.keys};
    return true;
  }
  return false;
}

int32_t Matcher::with_string_state(int32_t top, int32_t state, int32_t count) {
  Frame g = arena_[size_t(top)];
  if (g_.nodes[size_t(g.node)].kind == NodeKind::string) {
    g.a = state;
    g.b = count;
  } else {
    g.b = state;
    g.a = -1;
  }
  return replace(top, g);
}

}  // namespace slm::grammar
