// TokenConstraint over a compiled Grammar. Each step walks the vocabulary trie once with the set
// of matcher states, dropping a whole subtree as soon as its prefix is dead. Inside a string the
// walk stops and uses the cached analysis of that trie node and string state instead: tokens that
// stay inside the string come from a precomputed set, and only tokens that close the string are
// walked further, from the state after the string.
#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/engine/grammar/matcher.hpp"
#include "slm/engine/grammar/vocabulary.hpp"
#include "slm/util/error.hpp"

namespace slm::grammar {
namespace {

constexpr size_t kMaxStates = 64;

struct Compiled {
  Grammar grammar;
  std::shared_ptr<Vocabulary> vocab;
};

// The 8 bytes (0 or 1 each) for every value of one bitset byte.
const uint64_t* byte_expansion() {
  static const auto table = [] {
    std::array<uint64_t, 256> t{};
    for (int v = 0; v < 256; ++v) {
      uint64_t x = 0;
      for (int k = 0; k < 8; ++k) if (v & (1 << k)) x |= uint64_t(1) << (8 * k);
      t[size_t(v)] = x;
    }
    return t;
  }();
  return table.data();
}

class GrammarConstraint final : public TokenConstraint {
 public:
  explicit GrammarConstraint(std::shared_ptr<Compiled> c) : c_(std::move(c)), matcher_(c_->grammar) {
    matcher_.clear();
    states_.push_back(matcher_.save(matcher_.initial()));
    bits_.resize(c_->vocab->size);
    update_flags();
  }

  void allowed_tokens(std::span<uint8_t> allowed) override {
    const Vocabulary& v = *c_->vocab;
    bits_.clear();
    load();
    if (!buf_.empty()) walk(*v.trie, 0, 0, buf_.size());
    const size_t n = std::min(allowed.size(), v.size);
    const uint64_t* table = byte_expansion();
    const auto& words = bits_.words();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
      const uint64_t w = words[i >> 6];
      for (int k = 0; k < 8; ++k) {
        const uint64_t x = table[(w >> (8 * k)) & 0xFF];
        std::memcpy(allowed.data() + i + size_t(8 * k), &x, 8);
      }
    }
    for (; i < n; ++i) allowed[i] = bits_.test(i) ? 1 : 0;
    for (size_t k = n; k < allowed.size(); ++k) allowed[k] = 0;
    for (int32_t e : v.eog) {
      if (size_t(e) < allowed.size()) allowed[size_t(e)] = complete_ ? 1 : 0;
    }
  }

  void accept(int32_t token) override {
    const Vocabulary& v = *c_->vocab;
    if (token < 0 || size_t(token) >= v.size) {
      fail(ErrorKind::invalid_argument, "token {} is outside the vocabulary of {} tokens", token, v.size);
    }
    if (std::find(v.eog.begin(), v.eog.end(), token) != v.eog.end()) {
      if (!complete_) fail(ErrorKind::invalid_argument, "end-of-generation token {} before the constrained text is complete", token);
      ended_ = true;
      finished_ = true;
      return;
    }
    if (ended_) fail(ErrorKind::invalid_argument, "token {} after the end of generation", token);
    const std::string& bytes = v.bytes[size_t(token)];
    if (bytes.empty()) fail(ErrorKind::invalid_argument, "token {} is a special token, not allowed by the grammar", token);
    load();
    std::vector<int32_t> cur = buf_, next;
    for (char ch : bytes) {
      next.clear();
      for (int32_t s : cur) matcher_.feed(s, uint8_t(ch), next);
      cur.swap(next);
      if (cur.empty()) fail(ErrorKind::invalid_argument, "token {} ({:?}) is not allowed by the grammar here", token, bytes);
    }
    std::vector<std::vector<Frame>> saved;
    for (int32_t s : cur) {
      std::vector<Frame> st = matcher_.save(s);
      const bool dup = std::any_of(saved.begin(), saved.end(), [&](const std::vector<Frame>& o) {
        if (o.size() != st.size()) return false;
        for (size_t k = 0; k < o.size(); ++k) if (!o[k].same_as(st[k])) return false;
        return true;
      });
      if (!dup) saved.push_back(std::move(st));
      if (saved.size() >= kMaxStates) break;
    }
    states_ = std::move(saved);
    update_flags();
  }

  bool complete() const override { return complete_; }
  bool finished() const override { return finished_; }

  std::unique_ptr<TokenConstraint> clone_initial() const override { return std::make_unique<GrammarConstraint>(c_); }

 private:
  void load() {
    matcher_.clear();
    buf_.clear();
    for (const auto& st : states_) buf_.push_back(matcher_.load(st));
  }

  void update_flags() {
    load();
    complete_ = std::any_of(buf_.begin(), buf_.end(), [&](int32_t s) { return matcher_.can_end(s); });
    bool more = false;
    std::vector<int32_t> out;
    for (int b = 0; b < 256 && !more; ++b) {
      for (int32_t s : buf_) {
        out.clear();
        matcher_.feed(s, uint8_t(b), out);
        if (!out.empty()) { more = true; break; }
      }
    }
    finished_ = complete_ && !more;
  }

  void mark(const Trie& trie, uint32_t node) {
    const Trie::Node& n = trie.node(node);
    for (uint32_t e = n.sub_lo; e < n.sub_lo + n.exact; ++e) bits_.set(size_t(trie.entry(e).token));
  }

  // States in buf_[begin, end) have read the prefix of `node`; marks the tokens strictly below it.
  void walk(const Trie& trie, uint32_t node, size_t begin, size_t end) {
    if (end - begin == 1) {
      StringContent sc;
      if (matcher_.string_content(buf_[begin], sc)) return string_walk(trie, node, sc, buf_[begin]);
    }
    const Trie::Node& n = trie.node(node);
    for (uint32_t k = 0; k < n.child_count; ++k) {
      const uint8_t byte = trie.child_byte(n.child_begin + k);
      const uint32_t child = trie.child_node(n.child_begin + k);
      const size_t mark_buf = buf_.size(), mark_arena = matcher_.arena_size();
      for (size_t s = begin; s < end; ++s) matcher_.feed(buf_[s], byte, buf_);
      if (buf_.size() > mark_buf) {
        mark(trie, child);
        if (trie.node(child).child_count > 0) walk(trie, child, mark_buf, buf_.size());
      }
      buf_.resize(mark_buf);
      matcher_.truncate(mark_arena);
    }
  }

  void string_walk(const Trie& trie, uint32_t node, const StringContent& sc, int32_t top) {
    const StringAnalysis& a = c_->vocab->cache.get(trie, node, *sc.dfa, sc.state, c_->vocab->size);
    const int64_t remaining = sc.max_length < 0 ? INT64_MAX : int64_t(sc.max_length) - sc.count;
    if (remaining >= a.max_chars && a.has_bitsets) {
      bits_.or_with(a.content_all);
    } else if (a.has_bitsets && remaining < int64_t(a.content_upto.size())) {
      if (remaining >= 0) bits_.or_with(a.content_upto[size_t(remaining)]);
    } else if (a.has_bitsets) {
      // Up to the last precomputed count from its set, the few longer tokens one by one.
      bits_.or_with(a.content_upto.back());
      const int64_t done = int64_t(a.content_upto.size()) - 1;
      auto it = std::upper_bound(a.content.begin(), a.content.end(), std::make_pair(int32_t(done), INT32_MAX));
      for (; it != a.content.end() && it->first <= remaining; ++it) bits_.set(size_t(it->second));
    } else {
      for (const auto& [chars, token] : a.content) {
        if (chars > remaining) break;
        bits_.set(size_t(token));
      }
    }
    const bool free = sc.max_length < 0 && sc.count >= sc.min_length;
    for (const StringAnalysis::Exit& e : free ? a.merged : a.by_count) {
      if (!sc.dfa->accepting[size_t(e.state)]) continue;
      const int64_t count = free ? sc.count : int64_t(sc.count) + e.chars;
      if (count < sc.min_length || (sc.max_length >= 0 && count > sc.max_length)) continue;
      const size_t mark_buf = buf_.size(), mark_arena = matcher_.arena_size();
      const int32_t s = matcher_.with_string_state(top, e.state, int32_t(count));
      matcher_.feed(s, '"', buf_);
      if (buf_.size() > mark_buf) {
        mark(*e.after, 0);
        walk(*e.after, 0, mark_buf, buf_.size());
      }
      buf_.resize(mark_buf);
      matcher_.truncate(mark_arena);
    }
    // Keys: the exits above treated every key as an extra one. Tokens that close the key right
    // where it spells a declared key are decided exactly instead.
    if (sc.key_position >= 0) key_exceptions(trie, node, trie.node(node).depth, *sc.keys, sc.key_position, top);
  }

  void key_exceptions(const Trie& trie, uint32_t node, uint32_t base_depth, const LiteralTrie& keys, int32_t position, int32_t top) {
    const auto& kn = keys.nodes[size_t(position)];
    auto child = [&](uint32_t n, uint8_t byte) -> int64_t {
      const Trie::Node& tn = trie.node(n);
      for (uint32_t k = 0; k < tn.child_count; ++k) {
        if (trie.child_byte(tn.child_begin + k) == byte) return trie.child_node(tn.child_begin + k);
      }
      return -1;
    };
    if (kn.terminal >= 0) {
      const int64_t q = child(node, '"');
      if (q >= 0) {
        const Trie::Node& qn = trie.node(uint32_t(q));
        for (uint32_t e = qn.sub_lo; e < qn.sub_hi; ++e) {
          const Trie::Entry& entry = trie.entry(e);
          if (exact(top, entry.bytes.substr(base_depth))) bits_.set(size_t(entry.token));
          else bits_.reset(size_t(entry.token));
        }
      }
    }
    for (const auto& [byte, next] : kn.children) {
      const int64_t c = child(node, byte);
      if (c >= 0) key_exceptions(trie, uint32_t(c), base_depth, keys, next, top);
    }
  }

  // Whether `bytes` can be read from state `top`.
  bool exact(int32_t top, std::string_view bytes) {
    const size_t mark_buf = buf_.size(), mark_arena = matcher_.arena_size();
    std::vector<int32_t> cur = {top}, next;
    for (char ch : bytes) {
      next.clear();
      for (int32_t s : cur) matcher_.feed(s, uint8_t(ch), next);
      cur.swap(next);
      if (cur.empty()) break;
    }
    const bool ok = !cur.empty();
    buf_.resize(mark_buf);
    matcher_.truncate(mark_arena);
    return ok;
  }

  std::shared_ptr<Compiled> c_;
  Matcher matcher_;
  std::vector<std::vector<Frame>> states_;
  std::vector<int32_t> buf_;
  Bitset bits_;
  bool complete_ = false, finished_ = false, ended_ = false;
};

std::shared_ptr<TokenConstraint> make_constraint(Grammar grammar, const Tokenizer& tokenizer) {
  auto c = std::make_shared<Compiled>();
  c->grammar = std::move(grammar);
  c->vocab = vocabulary_for(tokenizer);
  return std::make_shared<GrammarConstraint>(std::move(c));
}

}  // namespace

std::shared_ptr<TokenConstraint> compile_json_schema(const nlohmann::ordered_json& schema, const Tokenizer& tokenizer,
                                                     const SchemaLimits& limits) {
  return make_constraint(compile_grammar(schema, limits), tokenizer);
}

std::shared_ptr<TokenConstraint> compile_json_schema(const nlohmann::json& schema, const Tokenizer& tokenizer,
                                                     const SchemaLimits& limits) {
  return make_constraint(compile_grammar(nlohmann::ordered_json::parse(schema.dump()), limits), tokenizer);
}

void prepare_vocabulary(const Tokenizer& tokenizer) { vocabulary_for(tokenizer); }

std::shared_ptr<TokenConstraint> json_object_constraint(const Tokenizer& tokenizer) {
  return compile_json_schema(nlohmann::json{{"type", "object"}}, tokenizer);
}

std::shared_ptr<TokenConstraint> choice_constraint(std::vector<std::string> choices, const Tokenizer& tokenizer) {
  if (choices.empty()) fail(ErrorKind::invalid_argument, "expected at least one choice, found none");
  SchemaLimits limits;
  if (choices.size() > limits.max_enum_values) {
    fail(ErrorKind::out_of_range, "{} choices exceed the limit of {}", choices.size(), limits.max_enum_values);
  }
  Grammar g;
  g.key_dfa = json_string_dfa();
  g.max_depth = limits.max_nesting + 2;
  Node root;
  root.kind = NodeKind::root;
  root.child = 1;
  Node lit;
  lit.kind = NodeKind::literals;
  size_t total = 0;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i].empty()) fail(ErrorKind::invalid_argument, "choice {} is empty", i);
    total += choices[i].size();
    if (total > limits.max_literal_bytes) fail(ErrorKind::out_of_range, "choices exceed {} bytes", limits.max_literal_bytes);
    lit.literals.add(choices[i], int32_t(i));
  }
  g.nodes.push_back(std::move(root));
  g.nodes.push_back(std::move(lit));
  return make_constraint(std::move(g), tokenizer);
}

}  // namespace slm::grammar
