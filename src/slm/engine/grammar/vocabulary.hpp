// The vocabulary as the grammar matcher sees it: every token's bytes in a trie (so one walk per
// step visits each shared prefix once and drops dead prefixes whole), and a cache of per-string-state
// analyses: which tokens stay inside a string's characters (context-free) and which leave it through
// its closing quote (walked with the context after the string).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "slm/engine/grammar/string_dfa.hpp"
#include "slm/tokenizer/tokenizer.hpp"

namespace slm::grammar {

class Bitset {
 public:
  void resize(size_t n) { words_.assign((n + 63) / 64, 0); }
  void clear() { std::fill(words_.begin(), words_.end(), 0); }
  void set(size_t i) { words_[i >> 6] |= uint64_t(1) << (i & 63); }
  void reset(size_t i) { words_[i >> 6] &= ~(uint64_t(1) << (i & 63)); }
  bool test(size_t i) const { return (words_[i >> 6] >> (i & 63)) & 1; }
  void or_with(const Bitset& o) {
    for (size_t k = 0; k < words_.size(); ++k) words_[k] |= o.words_[k];
  }
  const std::vector<uint64_t>& words() const { return words_; }

 private:
  std::vector<uint64_t> words_;
};

// A byte trie over (bytes, token) entries. Node 0 is the root (the empty prefix).
class Trie {
 public:
  struct Node {
    uint32_t child_begin = 0, child_count = 0;  // into child_byte / child_node
    uint32_t sub_lo = 0, sub_hi = 0;            // entries with this prefix (sorted order)
    uint32_t exact = 0;                         // the first `exact` of them end here
    uint32_t depth = 0;
  };
  struct Entry {
    std::string_view bytes;  // views into storage that outlives the trie
    int32_t token = 0;
  };

  explicit Trie(std::vector<Entry> entries);
  const Node& node(uint32_t i) const { return nodes_[i]; }
  uint8_t child_byte(uint32_t k) const { return child_byte_[k]; }
  uint32_t child_node(uint32_t k) const { return child_node_[k]; }
  const Entry& entry(uint32_t i) const { return entries_[i]; }
  size_t size() const { return nodes_.size(); }
  uint64_t uid() const { return uid_; }

 private:
  void build(uint32_t node, uint32_t lo, uint32_t hi, uint32_t depth);

  std::vector<Entry> entries_;
  std::vector<Node> nodes_;
  std::vector<uint8_t> child_byte_;
  std::vector<uint32_t> child_node_;
  uint64_t uid_;
};

// The tokens below one trie node, seen from inside a string in one automaton state.
struct StringAnalysis {
  // Tokens whose remaining bytes stay inside the string: (characters they use, including the fewest
  // still needed to reach acceptance, token), sorted by characters.
  std::vector<std::pair<int32_t, int32_t>> content;
  std::vector<Bitset> content_upto;  // large sets only: [k] = content using at most k characters
  Bitset content_all;
  bool has_bitsets = false;
  // Tokens that close the string: grouped by the automaton state before the quote and the characters
  // read before it; each group is a trie of what follows the quote.
  struct Exit {
    int32_t state = 0;
    int32_t chars = 0;  // -1 in the merged groups
    std::unique_ptr<Trie> after;
  };
  std::vector<Exit> by_count;
  std::vector<Exit> merged;  // by state only: for strings with no length limit left
  int32_t max_chars = 0;
};

class AnalysisCache {
 public:
  // The analysis of the tokens strictly below `node` of `trie` from automaton state `state`.
  const StringAnalysis& get(const Trie& trie, uint32_t node, const StringDfa& dfa, int32_t state, size_t vocab_size);

 private:
  struct Key {
    uint64_t trie, dfa;
    uint32_t node;
    int32_t state;
    bool operator==(const Key&) const = default;
  };
  struct Hash {
    size_t operator()(const Key& k) const {
      return size_t(k.trie * 0x9E3779B97F4A7C15ull ^ k.dfa * 0xC2B2AE3D27D4EB4Full ^ (uint64_t(k.node) << 20) ^ uint64_t(uint32_t(k.state)));
    }
  };
  std::mutex mutex_;
  std::unordered_map<Key, std::unique_ptr<StringAnalysis>, Hash> map_;
};

struct Vocabulary {
  size_t size = 0;                  // the tokenizer's vocabulary size
  std::vector<std::string> bytes;   // per token; empty for tokens never allowed (special ones)
  std::vector<int32_t> eog;         // end-of-generation ids
  std::unique_ptr<Trie> trie;
  // Analyses of every string automaton used with this vocabulary (automata of patterns are shared
  // across schemas through compile_pattern's cache, so repeated schemas find theirs here).
  AnalysisCache cache;
};

// Built once per tokenizer and shared (a few tokenizers are kept).
std::shared_ptr<Vocabulary> vocabulary_for(const Tokenizer& tokenizer);

}  // namespace slm::grammar
