#include "slm/engine/grammar/string_dfa.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>

#include "slm/util/error.hpp"

namespace slm::grammar {
namespace {

constexpr size_t kMaxPatternBytes = 4096;
constexpr int kMaxRepeat = 1000;
constexpr size_t kMaxNfaStates = 50000;
constexpr size_t kMaxDfaStates = 4096;
constexpr uint32_t kMaxCodePoint = 0x10FFFF;

std::atomic<uint64_t> next_uid{1};

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;  // code point ranges, inclusive

Ranges normalize(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.emplace_back(lo, hi);
    }
  }
  return out;
}

Ranges complement(const Ranges& r) {
  Ranges n = normalize(r), out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : n) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.emplace_back(next, kMaxCodePoint);
  return out;
}

Ranges intersect(const Ranges& a, const Ranges& b) {
  Ranges x = normalize(a), y = normalize(b), out;
  size_t i = 0, j = 0;
  while (i < x.size() && j < y.size()) {
    const uint32_t lo = std::max(x[i].first, y[j].first), hi = std::min(x[i].second, y[j].second);
    if (lo <= hi) out.emplace_back(lo, hi);
    (x[i].second < y[j].second) ? ++i : ++j;
  }
  return out;
}

// Regex syntax tree.
struct Ast {
  enum Kind { empty, chars, concat, alt, repeat, start_anchor, end_anchor } kind = empty;
  Ranges ranges;
  std::vector<Ast> children;
  int min = 0, max = -1;  // repeat; max -1 = unbounded
};

class Parser {
 public:
  explicit Parser(std::string_view p) : p_(p) {}

  Ast parse() {
    Ast a = alternation();
    if (i_ < p_.size()) bad("unbalanced ')'");
    return a;
  }

 private:
  [[noreturn]] void bad(const char* what) {
    fail(ErrorKind::unsupported, "pattern {:?}: {} at offset {}", std::string(p_), what, i_);
  }

  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }

  Ast alternation() {
    Ast a;
    a.kind = Ast::alt;
    a.children.push_back(sequence());
    while (more() && peek() == '|') {
      ++i_;
      a.children.push_back(sequence());
    }
    if (a.children.size() == 1) return std::move(a.children[0]);
    return a;
  }

  Ast sequence() {
    Ast s;
    s.kind = Ast::concat;
    while (more() && peek() != '|' && peek() != ')') s.children.push_back(quantified());
    return s;
  }

  int number() {
    int n = 0, digits = 0;
    while (more() && peek() >= '0' && peek() <= '9') {
      n = std::min(n * 10 + (peek() - '0'), kMaxRepeat + 1);
      ++i_;
      ++digits;
    }
    if (digits == 0) bad("expected a number in {n,m}");
    if (n > kMaxRepeat) fail(ErrorKind::out_of_range, "pattern: a repeat count above {} is not supported", kMaxRepeat);
    return n;
  }

  Ast quantified() {
    Ast a = atom();
    while (more()) {
      int lo, hi;
      const char c = peek();
      if (c == '*') { lo = 0; hi = -1; ++i_; }
      else if (c == '+') { lo = 1; hi = -1; ++i_; }
      else if (c == '?') { lo = 0; hi = 1; ++i_; }
      else if (c == '{') {
        ++i_;
        lo = number();
        hi = lo;
        if (more() && peek() == ',') {
          ++i_;
          hi = (more() && peek() == '}') ? -1 : number();
        }
        if (!more() || peek() != '}') bad("expected '}'");
        ++i_;
        if (hi >= 0 && hi < lo) bad("{n,m} with m < n");
      } else {
        break;
      }
      if (a.kind == Ast::start_anchor || a.kind == Ast::end_anchor) bad("quantified anchor");
      if (more() && peek() == '?') ++i_;  // lazy: same set of whole-string matches
      Ast r;
      r.kind = Ast::repeat;
      r.min = lo;
      r.max = hi;
      r.children.push_back(std::move(a));
      a = std::move(r);
    }
    return a;
  }

  uint32_t utf8_char() {
    const auto b0 = uint8_t(p_[i_]);
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    if (len == 0 || i_ + len > p_.size()) bad("invalid UTF-8");
    uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; k < len; ++k) {
      const auto b = uint8_t(p_[i_ + k]);
      if ((b & 0xC0) != 0x80) bad("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    i_ += len;
    return cp;
  }

  uint32_t hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      if (!more()) bad("truncated hex escape");
      const char c = peek();
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) bad("bad hex digit");
      v = v * 16 + uint32_t(d);
      ++i_;
    }
    return v;
  }

  // After a backslash: a class shorthand (returned in `out`, true) or one character.
  bool escape(Ranges& out, uint32_t& cp, bool in_class) {
    if (!more()) bad("trailing backslash");
    const char c = peek();
    ++i_;
    static const Ranges digit = {{'0', '9'}};
    static const Ranges word = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
    static const Ranges space = {{'\t', '\r'}, {' ', ' '}, {0xA0, 0xA0}, {0x2028, 0x2029}, {0xFEFF, 0xFEFF}};
    switch (c) {
      case 'd': out = digit; return true;
      case 'w': out = word; return true;
      case 's': out = space; return true;
      case 'D': out = complement(digit); return true;
      case 'W': out = complement(word); return true;
      case 'S': out = complement(space); return true;
      case 'n': cp = '\n'; return false;
      case 'r': cp = '\r'; return false;
      case 't': cp = '\t'; return false;
      case 'f': cp = '\f'; return false;
      case 'v': cp = '\v'; return false;
      case '0': cp = 0; return false;
      case 'x': cp = hex(2); return false;
      case 'u': cp = hex(4); return false;
      case 'b':
        if (in_class) { cp = '\b'; return false; }
        bad("word boundary \\b");
      default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) bad("unsupported escape");
        --i_;
        cp = utf8_char();
        return false;
    }
  }

  Ranges char_class() {
    // after '['
    bool negate = false;
    if (more() && peek() == '^') { negate = true; ++i_; }
    Ranges r;
    bool first = true;
    while (true) {
      if (!more()) bad("unterminated class");
      if (peek() == ']' && !first) { ++i_; break; }
      first = false;
      uint32_t lo;
      if (peek() == '\\') {
        ++i_;
        Ranges sh;
        if (escape(sh, lo, true)) { r.insert(r.end(), sh.begin(), sh.end()); continue; }
      } else {
        lo = utf8_char();
      }
      uint32_t hi = lo;
      if (i_ + 1 < p_.size() && peek() == '-' && p_[i_ + 1] != ']') {
        ++i_;
        if (peek() == '\\') {
          ++i_;
          Ranges sh;
          if (escape(sh, hi, true)) bad("class shorthand as a range end");
        } else {
          hi = utf8_char();
        }
        if (hi < lo) bad("range out of order");
      }
      r.emplace_back(lo, hi);
    }
    return negate ? complement(r) : normalize(r);
  }

  Ast atom() {
    Ast a;
    a.kind = Ast::chars;
    const char c = peek();
    if (c == '(') {
      ++i_;
      if (more() && peek() == '?') {
        if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') {
          i_ += 2;
        } else {
          bad("look-around, named group or inline flags (?...)");
        }
      }
      Ast inner = alternation();
      if (!more() || peek() != ')') bad("expected ')'");
      ++i_;
      return inner;
    }
    if (c == '[') { ++i_; a.ranges = char_class(); return a; }
    if (c == '.') { ++i_; a.ranges = complement({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}); return a; }
    if (c == '^') { ++i_; a.kind = Ast::start_anchor; return a; }
    if (c == '$') { ++i_; a.kind = Ast::end_anchor; return a; }
    if (c == '*' || c == '+' || c == '?' || c == '{') bad("nothing to repeat");
    if (c == '\\') {
      ++i_;
      uint32_t cp;
      if (escape(a.ranges, cp, false)) return a;
      a.ranges = {{cp, cp}};
      return a;
    }
    const uint32_t cp = utf8_char();
    a.ranges = {{cp, cp}};
    return a;
  }

  std::string_view p_;
  size_t i_ = 0;
};

// Thompson NFA over bytes.
struct Nfa {
  struct State {
    std::vector<int> eps;
    std::vector<std::pair<std::pair<uint8_t, uint8_t>, int>> edges;
  };
  std::vector<State> states;

  int add() {
    if (states.size() >= kMaxNfaStates) fail(ErrorKind::out_of_range, "pattern is too large (more than {} automaton states)", kMaxNfaStates);
    states.emplace_back();
    return int(states.size()) - 1;
  }
};

int utf8_encode(uint32_t cp, uint8_t* out) {
  if (cp < 0x80) { out[0] = uint8_t(cp); return 1; }
  if (cp < 0x800) { out[0] = uint8_t(0xC0 | (cp >> 6)); out[1] = uint8_t(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    out[0] = uint8_t(0xE0 | (cp >> 12)); out[1] = uint8_t(0x80 | ((cp >> 6) & 0x3F)); out[2] = uint8_t(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = uint8_t(0xF0 | (cp >> 18)); out[1] = uint8_t(0x80 | ((cp >> 12) & 0x3F));
  out[2] = uint8_t(0x80 | ((cp >> 6) & 0x3F)); out[3] = uint8_t(0x80 | (cp & 0x3F));
  return 4;
}

// Splits a code point range into runs whose UTF-8 encodings are byte-range products.
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>& out) {
  if (lo > hi) return;
  for (uint32_t limit : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= limit && hi > limit) {
      utf8_sequences(lo, limit, out);
      utf8_sequences(limit + 1, hi, out);
      return;
    }
  }
  if (hi >= 0x80) {
    for (int i = 1; i < 4; ++i) {
      const uint32_t m = (1u << (6 * i)) - 1;
      if ((lo & ~m) != (hi & ~m)) {
        if ((lo & m) != 0) {
          utf8_sequences(lo, lo | m, out);
          utf8_sequences((lo | m) + 1, hi, out);
          return;
        }
        if ((hi & m) != m) {
          utf8_sequences(lo, (hi & ~m) - 1, out);
          utf8_sequences(hi & ~m, hi, out);
          return;
        }
      }
    }
  }
  uint8_t a[4], b[4];
  const int n = utf8_encode(lo, a);
  utf8_encode(hi, b);
  std::vector<std::pair<uint8_t, uint8_t>> seq;
  for (int k = 0; k < n; ++k) seq.emplace_back(a[k], b[k]);
  out.push_back(std::move(seq));
}

struct Fragment {
  int in, out;
};

class NfaBuilder {
 public:
  NfaBuilder(Nfa& nfa, bool json_safe) : nfa_(nfa), json_safe_(json_safe) {}

  Fragment build(const Ast& a) {
    switch (a.kind) {
      case Ast::empty:
      case Ast::start_anchor:
      case Ast::end_anchor: {
        const int s = nfa_.add();
        return {s, s};
      }
      case Ast::chars: return chars(a.ranges);
      case Ast::concat: {
        const int s = nfa_.add();
        Fragment f{s, s};
        for (const Ast& c : a.children) {
          if (c.kind == Ast::start_anchor || c.kind == Ast::end_anchor) {
            fail(ErrorKind::unsupported, "pattern: '^' and '$' are supported only at the start and end of a top-level alternative");
          }
          const Fragment g = build(c);
          nfa_.states[f.out].eps.push_back(g.in);
          f.out = g.out;
        }
        return f;
      }
      case Ast::alt: {
        const int s = nfa_.add(), e = nfa_.add();
        for (const Ast& c : a.children) {
          const Fragment g = build(c);
          nfa_.states[s].eps.push_back(g.in);
          nfa_.states[g.out].eps.push_back(e);
        }
        return {s, e};
      }
      case Ast::repeat: {
        const Ast& c = a.children[0];
        const int s = nfa_.add();
        Fragment f{s, s};
        for (int k = 0; k < a.min; ++k) {
          const Fragment g = build(c);
          nfa_.states[f.out].eps.push_back(g.in);
          f.out = g.out;
        }
        if (a.max < 0) {
          const Fragment g = build(c);
          const int e = nfa_.add();
          nfa_.states[f.out].eps.push_back(g.in);
          nfa_.states[f.out].eps.push_back(e);
          nfa_.states[g.out].eps.push_back(g.in);
          nfa_.states[g.out].eps.push_back(e);
          f.out = e;
        } else {
          const int e = nfa_.add();
          for (int k = a.min; k < a.max; ++k) {
            nfa_.states[f.out].eps.push_back(e);
            const Fragment g = build(c);
            nfa_.states[f.out].eps.push_back(g.in);
            f.out = g.out;
          }
          nfa_.states[f.out].eps.push_back(e);
          f.out = e;
        }
        return f;
      }
    }
    return {0, 0};
  }

  Fragment chars(Ranges r) {
    Ranges allowed = {{0, 0xD7FF}, {0xE000, kMaxCodePoint}};
    if (json_safe_) allowed = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0xD7FF}, {0xE000, kMaxCodePoint}};
    r = intersect(r, allowed);
    const int s = nfa_.add(), e = nfa_.add();
    std::vector<std::vector<std::pair<uint8_t, uint8_t>>> seqs;
    for (const auto& [lo, hi] : r) utf8_sequences(lo, hi, seqs);
    for (const auto& seq : seqs) {
      int at = s;
      for (size_t k = 0; k < seq.size(); ++k) {
        const int to = (k + 1 == seq.size()) ? e : nfa_.add();
        nfa_.states[at].edges.push_back({seq[k], to});
        at = to;
      }
    }
    return {s, e};
  }

 private:
  Nfa& nfa_;
  bool json_safe_;
};

void closure(const Nfa& nfa, std::vector<int>& set) {
  std::vector<uint8_t> seen(nfa.states.size(), 0);
  for (int s : set) seen[s] = 1;
  for (size_t k = 0; k < set.size(); ++k) {
    for (int t : nfa.states[set[k]].eps) {
      if (!seen[t]) { seen[t] = 1; set.push_back(t); }
    }
  }
  std::sort(set.begin(), set.end());
}

// Removes states that cannot reach acceptance and computes min_chars.
void finish(StringDfa& d) {
  const int n = d.n_states;
  std::vector<int32_t> best(n, INT32_MAX);
  for (int q = 0; q < n; ++q) if (d.accepting[q]) best[q] = 0;
  for (bool changed = true; changed;) {
    changed = false;
    for (int q = 0; q < n; ++q) {
      for (int b = 0; b < 256; ++b) {
        const int32_t t = d.next[size_t(q) * 256 + b];
        if (t < 0 || best[t >> 1] == INT32_MAX) continue;
        const int32_t c = best[t >> 1] + (t & 1);
        if (c < best[q]) { best[q] = c; changed = true; }
      }
    }
  }
  for (int q = 0; q < n; ++q) {
    for (int b = 0; b < 256; ++b) {
      int32_t& t = d.next[size_t(q) * 256 + b];
      if (t >= 0 && best[t >> 1] == INT32_MAX) t = StringDfa::kDead;
    }
  }
  d.min_chars = best;
  // Longest: depth-first over live states; a state on a cycle (or leading to one) is unbounded.
  std::vector<int32_t> longest(n, -1);
  std::vector<uint8_t> color(n, 0);
  std::function<int32_t(int32_t)> visit = [&](int32_t q) -> int32_t {
    if (color[q] == 2) return longest[q];
    if (color[q] == 1) return INT32_MAX;
    color[q] = 1;
    int32_t m = d.accepting[q] ? 0 : -1;
    for (int b = 0; b < 256 && m != INT32_MAX; ++b) {
      const int32_t t = d.next[size_t(q) * 256 + b];
      if (t < 0) continue;
      const int32_t r = visit(t >> 1);
      if (r == INT32_MAX) m = INT32_MAX;
      else if (r >= 0) m = std::max(m, r + (t & 1));
    }
    color[q] = 2;
    longest[q] = m;
    return m;
  };
  for (int q = 0; q < n; ++q) visit(q);
  d.max_chars = longest;
  d.uid = next_uid++;
}

}  // namespace

namespace {

std::shared_ptr<const StringDfa> build_pattern(std::string_view pattern, bool json_safe) {
  if (pattern.size() > kMaxPatternBytes) {
    fail(ErrorKind::out_of_range, "pattern of {} bytes is longer than the limit of {}", pattern.size(), kMaxPatternBytes);
  }
  Ast ast = Parser(pattern).parse();
  // Unanchored ends of each top-level alternative match anything (JSON Schema searches).
  std::vector<Ast> branches;
  if (ast.kind == Ast::alt) branches = std::move(ast.children);
  else branches.push_back(std::move(ast));
  Ast any_text;
  any_text.kind = Ast::repeat;
  any_text.min = 0;
  any_text.max = -1;
  any_text.children.push_back(Ast{Ast::chars, {{0, kMaxCodePoint}}, {}, 0, -1});
  Ast top;
  top.kind = Ast::alt;
  for (Ast& b : branches) {
    std::vector<Ast> items;
    if (b.kind == Ast::concat) items = std::move(b.children);
    else items.push_back(std::move(b));
    const bool anchored_start = !items.empty() && items.front().kind == Ast::start_anchor;
    if (anchored_start) items.erase(items.begin());
    const bool anchored_end = !items.empty() && items.back().kind == Ast::end_anchor;
    if (anchored_end) items.pop_back();
    Ast c;
    c.kind = Ast::concat;
    if (!anchored_start) c.children.push_back(any_text);
    for (Ast& i : items) c.children.push_back(std::move(i));
    if (!anchored_end) c.children.push_back(any_text);
    top.children.push_back(std::move(c));
  }
  Nfa nfa;
  const Fragment f = NfaBuilder(nfa, json_safe).build(top);

  auto d = std::make_shared<StringDfa>();
  std::map<std::vector<int>, int> ids;
  std::vector<std::vector<int>> sets;
  std::vector<int> s0 = {f.in};
  closure(nfa, s0);
  ids[s0] = 0;
  sets.push_back(s0);
  for (size_t q = 0; q < sets.size(); ++q) {
    d->next.resize((q + 1) * 256, StringDfa::kDead);
    const std::vector<int> cur = sets[q];
    d->accepting.push_back(std::binary_search(cur.begin(), cur.end(), f.out) ? 1 : 0);
    for (int b = 0; b < 256; ++b) {
      std::vector<int> to;
      for (int s : cur) {
        for (const auto& [r, t] : nfa.states[s].edges) {
          if (b >= r.first && b <= r.second) to.push_back(t);
        }
      }
      if (to.empty()) continue;
      closure(nfa, to);
      to.erase(std::unique(to.begin(), to.end()), to.end());
      auto it = ids.find(to);
      int id;
      if (it == ids.end()) {
        if (sets.size() >= kMaxDfaStates) fail(ErrorKind::out_of_range, "pattern is too complex (more than {} automaton states)", kMaxDfaStates);
        id = int(sets.size());
        ids.emplace(to, id);
        sets.push_back(to);
      } else {
        id = it->second;
      }
      const bool starts_char = (b & 0xC0) != 0x80;
      d->next[q * 256 + b] = (id << 1) | (starts_char ? 1 : 0);
    }
  }
  d->n_states = int32_t(sets.size());
  d->start = 0;
  finish(*d);
  if (d->min_chars[0] == INT32_MAX) fail(ErrorKind::invalid_argument, "pattern {:?} matches no string slm can generate", std::string(pattern));
  if (json_safe) {
    for (int32_t q = 0; q < d->n_states; ++q) d->next[size_t(q) * 256 + '"'] = StringDfa::kClose;
  }
  return d;
}

}  // namespace

std::shared_ptr<const StringDfa> compile_pattern(std::string_view pattern, bool json_safe) {
  // Recent automata are kept, so a schema sent again reuses them (and their mask analyses).
  static std::mutex mutex;
  static std::map<std::pair<std::string, bool>, std::shared_ptr<const StringDfa>> cache;
  static std::vector<std::pair<std::string, bool>> order;
  constexpr size_t kMaxCached = 256;
  const std::pair<std::string, bool> key(std::string(pattern), json_safe);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  auto dfa = build_pattern(pattern, json_safe);
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, inserted] = cache.emplace(key, dfa);
  if (inserted) {
    order.push_back(key);
    if (order.size() > kMaxCached) {
      cache.erase(order.front());
      order.erase(order.begin());
    }
  }
  return it->second;
}

std::shared_ptr<const StringDfa> json_string_dfa() {
  static const std::shared_ptr<const StringDfa> dfa = [] {
    enum { base, esc, u0, u1, u2, u3, ud, c1, c2, e0, ed, f0, f4, c3, n };
    auto d = std::make_shared<StringDfa>();
    d->n_states = n;
    d->next.assign(size_t(n) * 256, StringDfa::kDead);
    auto set = [&](int q, int lo, int hi, int to, bool starts) {
      for (int b = lo; b <= hi; ++b) d->next[size_t(q) * 256 + b] = (to << 1) | (starts ? 1 : 0);
    };
    set(base, 0x20, 0x7F, base, true);
    d->next[base * 256 + '"'] = StringDfa::kClose;
    set(base, '\\', '\\', esc, true);
    set(base, 0xC2, 0xDF, c1, true);
    set(base, 0xE0, 0xE0, e0, true);
    set(base, 0xE1, 0xEC, c2, true);
    set(base, 0xED, 0xED, ed, true);
    set(base, 0xEE, 0xEF, c2, true);
    set(base, 0xF0, 0xF0, f0, true);
    set(base, 0xF1, 0xF3, c3, true);
    set(base, 0xF4, 0xF4, f4, true);
    for (char c : std::string("\"\\/bfnrt")) set(esc, uint8_t(c), uint8_t(c), base, false);
    set(esc, 'u', 'u', u0, false);
    auto hex = [&](int q, int to) {
      set(q, '0', '9', to, false);
      set(q, 'a', 'f', to, false);
      set(q, 'A', 'F', to, false);
    };
    hex(u0, u1);
    set(u0, 'd', 'd', ud, false);
    set(u0, 'D', 'D', ud, false);
    set(ud, '0', '7', u2, false);
    hex(u1, u2);
    hex(u2, u3);
    hex(u3, base);
    set(c1, 0x80, 0xBF, base, false);
    set(c2, 0x80, 0xBF, c1, false);
    set(e0, 0xA0, 0xBF, c1, false);
    set(ed, 0x80, 0x9F, c1, false);
    set(c3, 0x80, 0xBF, c2, false);
    set(f0, 0x90, 0xBF, c2, false);
    set(f4, 0x80, 0x8F, c2, false);
    d->accepting.assign(n, 0);
    d->accepting[base] = 1;
    d->start = base;
    finish(*d);
    d->min_chars.assign(n, 0);  // a started character is already counted
    d->max_chars.assign(n, INT32_MAX);
    return std::shared_ptr<const StringDfa>(std::move(d));
  }();
  return dfa;
}

std::string format_regex(std::string_view format) {
  static const std::string date = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
  static const std::string time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
  if (format == "date") return "^" + date + "$";
  if (format == "time") return "^" + time + "$";
  if (format == "date-time") return "^" + date + "T" + time + "$";
  if (format == "email") return "^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$";
  if (format == "uuid") return "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
  return "";
}

bool dfa_matches(const StringDfa& dfa, std::string_view text) {
  int32_t q = dfa.start;
  for (char c : text) {
    const int32_t t = dfa.step(q, uint8_t(c));
    if (t < 0) return false;
    q = t >> 1;
  }
  return dfa.accepting[q] != 0;
}

}  // namespace slm::grammar
