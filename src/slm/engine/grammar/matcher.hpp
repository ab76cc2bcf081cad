// Byte-level matching of a Grammar: a state is a stack of frames, one per open value (object,
// array, string, ...). Frames live in an arena as immutable nodes linked to their parent, so a
// state is one index and branching (anyOf, a trie walk) copies nothing.
//
// Whitespace: none, except one optional space after ':' and after ',' (so both compact JSON and
// Python's default `", "` / `": "` separators match).
#pragma once

#include <cstdint>
#include <vector>

#include "slm/engine/grammar/grammar.hpp"

namespace slm::grammar {

struct Frame {
  int32_t node = 0;
  int32_t phase = 0;
  int32_t a = 0, b = 0, c = 0;
  int32_t depth = 0;
  int64_t m = 0;
  int32_t parent = -1;

  bool same_as(const Frame& o) const {
    return node == o.node && phase == o.phase && a == o.a && b == o.b && c == o.c && m == o.m;
  }
};

// What the trie walk needs to know about a state that is inside a string's characters.
struct StringContent {
  const StringDfa* dfa = nullptr;
  int32_t state = 0;   // automaton state
  int32_t count = 0;   // characters so far
  int32_t min_length = 0, max_length = -1;
  // Object keys that may be any string but are also matched against the declared keys: the key
  // trie position (-1 once the key differs from every declared one) and the trie.
  int32_t key_position = -1;
  const LiteralTrie* keys = nullptr;
};

class Matcher {
 public:
  explicit Matcher(const Grammar& grammar) : g_(grammar) {}

  void clear() { arena_.clear(); }
  int32_t initial();                                   // the root frame, before the value
  int32_t load(const std::vector<Frame>& stack);       // bottom first; returns the top index
  std::vector<Frame> save(int32_t top) const;          // bottom first
  // Appends to `out` every state reached from `top` by reading `byte` (none: the byte is not allowed).
  void feed(int32_t top, uint8_t byte, std::vector<int32_t>& out);
  bool can_end(int32_t top) const;                     // the text so far is a complete document
  bool string_content(int32_t top, StringContent& out) const;
  // A state in the same string with another automaton state and count (a key: one that matches no
  // declared key).
  int32_t with_string_state(int32_t top, int32_t state, int32_t count);
  const Frame& at(int32_t i) const { return arena_[size_t(i)]; }
  size_t arena_size() const { return arena_.size(); }
  void truncate(size_t n) { arena_.resize(n); }

 private:
  int32_t push(int32_t parent, Frame f);
  int32_t replace(int32_t top, Frame f);
  void start_value(int32_t parent, int32_t node, uint8_t byte, std::vector<int32_t>& out);
  void pop_and_feed(int32_t top, uint8_t byte, std::vector<int32_t>& out);
  void feed_object(int32_t top, uint8_t byte, std::vector<int32_t>& out);
  void feed_key(int32_t top, uint8_t byte, std::vector<int32_t>& out);
  void feed_array(int32_t top, uint8_t byte, std::vector<int32_t>& out);
  void feed_number(int32_t top, uint8_t byte, std::vector<int32_t>& out);
  bool key_possible(const Node& n, int32_t i) const;

  const Grammar& g_;
  std::vector<Frame> arena_;
};

// Number syntax states (Frame::phase of a number frame).
enum NumberPhase : int32_t { num_start, num_minus, num_zero, num_int, num_dot, num_frac, num_e, num_e_sign, num_exp };
constexpr int32_t kMaxNumberDigits = 15;  // integer and fraction digits together
constexpr int32_t kMaxExponentDigits = 2;

// Whether a number frame's text so far can still become a value within the node's bounds (or is
// one already, when `ending`).
bool number_feasible(const Node& n, int32_t phase, bool negative, int64_t mantissa, int32_t digits, int32_t frac_digits);
bool number_in_bounds(const Node& n, double value);

}  // namespace slm::grammar
