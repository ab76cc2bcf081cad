// The compiled form of a JSON schema (or a choice list): a graph of value nodes that the matcher
// walks byte by byte. Node 0 is the root.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slm/engine/grammar/string_dfa.hpp"

namespace slm::grammar {

// A set of fixed byte strings as a trie (enum / const values, true/false/null, object keys,
// choice lists). Node 0 is the root.
struct LiteralTrie {
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t terminal = -1;                              // index of the literal ending here, or -1
    std::vector<int32_t> below;                         // sorted literal indices at or below this node
  };
  std::vector<Node> nodes{Node{}};

  void add(const std::string& bytes, int32_t index);
  int32_t child(int32_t node, uint8_t byte) const;
};

enum class NodeKind : uint8_t { root, any_of, literals, string, number, object, array };

struct Property {
  std::string key;   // raw bytes between the quotes (JSON-escaped form)
  int32_t value = -1;
  bool required = false;
};

struct Node {
  NodeKind kind = NodeKind::any_of;
  // root: the value node. array: the items node.
  int32_t child = -1;
  // any_of
  std::vector<int32_t> alternatives;
  // literals
  LiteralTrie literals;
  // string
  std::shared_ptr<const StringDfa> dfa;
  int32_t min_length = 0, max_length = -1;  // in characters; -1 = unbounded
  // number
  bool integer = false;
  bool has_min = false, has_max = false, exclusive_min = false, exclusive_max = false;
  double minimum = 0, maximum = 0;
  // object
  std::vector<Property> properties;
  std::vector<int32_t> next_required;  // per position i: first required index >= i, or size()
  LiteralTrie keys;
  int32_t additional = -1;             // value node of other keys, -1 = none allowed
  // array
  int32_t min_items = 0, max_items = -1;

  // The fewest nested frames a value of this node needs (1 for scalars); kNoInstance when no finite
  // value exists (a required property recursing forever).
  int32_t min_depth = 1;
  static constexpr int32_t kNoInstance = INT32_MAX / 2;

  bool bounded() const { return has_min || has_max; }
};

struct Grammar {
  std::vector<Node> nodes;
  std::shared_ptr<const StringDfa> key_dfa;  // the plain JSON string automaton
  int32_t max_depth = 64;                    // nesting limit while matching
};

}  // namespace slm::grammar
