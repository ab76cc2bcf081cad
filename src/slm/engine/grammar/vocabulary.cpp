#include "slm/engine/grammar/vocabulary.hpp"

#include <algorithm>
#include <atomic>
#include <map>

namespace slm::grammar {
namespace {

std::atomic<uint64_t> next_trie_uid{1};
constexpr int32_t kUptoLimit = 16;     // content_upto holds k = 0..16
constexpr size_t kBitsetThreshold = 4096;

}  // namespace

Trie::Trie(std::vector<Entry> entries) : entries_(std::move(entries)), uid_(next_trie_uid++) {
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    return a.bytes != b.bytes ? a.bytes < b.bytes : a.token < b.token;
  });
  nodes_.emplace_back();
  build(0, 0, uint32_t(entries_.size()), 0);
}

void Trie::build(uint32_t node, uint32_t lo, uint32_t hi, uint32_t depth) {
  uint32_t exact = 0;
  while (lo + exact < hi && entries_[lo + exact].bytes.size() == depth) ++exact;
  nodes_[node].sub_lo = lo;
  nodes_[node].sub_hi = hi;
  nodes_[node].exact = exact;
  nodes_[node].depth = depth;
  std::vector<std::pair<uint32_t, uint32_t>> groups;  // entry ranges of the children
  for (uint32_t i = lo + exact; i < hi;) {
    const uint8_t b = uint8_t(entries_[i].bytes[depth]);
    uint32_t j = i + 1;
    while (j < hi && uint8_t(entries_[j].bytes[depth]) == b) ++j;
    groups.emplace_back(i, j);
    i = j;
  }
  const uint32_t begin = uint32_t(child_byte_.size());
  nodes_[node].child_begin = begin;
  nodes_[node].child_count = uint32_t(groups.size());
  for (const auto& [i, j] : groups) {
    child_byte_.push_back(uint8_t(entries_[i].bytes[depth]));
    child_node_.push_back(uint32_t(nodes_.size()));
    nodes_.emplace_back();
  }
  for (uint32_t k = 0; k < groups.size(); ++k) build(child_node_[begin + k], groups[k].first, groups[k].second, depth + 1);
}

const StringAnalysis& AnalysisCache::get(const Trie& trie, uint32_t node, const StringDfa& dfa, int32_t state, size_t vocab_size) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Key key{trie.uid(), dfa.uid, node, state};
  auto it = map_.find(key);
  if (it != map_.end()) return *it->second;

  auto a = std::make_unique<StringAnalysis>();
  struct ExitEntry {
    int32_t state, chars;
    Trie::Entry rest;
  };
  std::vector<ExitEntry> exits;
  struct Item {
    uint32_t node;
    int32_t state, chars;
  };
  std::vector<Item> stack = {{node, state, 0}};
  while (!stack.empty()) {
    const Item it = stack.back();
    stack.pop_back();
    const Trie::Node& n = trie.node(it.node);
    for (uint32_t k = 0; k < n.child_count; ++k) {
      const uint8_t byte = trie.child_byte(n.child_begin + k);
      const uint32_t c = trie.child_node(n.child_begin + k);
      const Trie::Node& cn = trie.node(c);
      const int32_t t = dfa.step(it.state, byte);
      if (t == StringDfa::kDead) continue;
      if (t == StringDfa::kClose) {
        for (uint32_t e = cn.sub_lo; e < cn.sub_hi; ++e) {
          const Trie::Entry& entry = trie.entry(e);
          exits.push_back({it.state, it.chars, {entry.bytes.substr(cn.depth), entry.token}});
        }
        continue;
      }
      const int32_t q = t >> 1, chars = it.chars + (t & 1);
      const int32_t need = chars + dfa.min_chars[size_t(q)];
      for (uint32_t e = cn.sub_lo; e < cn.sub_lo + cn.exact; ++e) a->content.emplace_back(need, trie.entry(e).token);
      if (cn.child_count > 0) stack.push_back({c, q, chars});
    }
  }
  std::sort(a->content.begin(), a->content.end());
  a->max_chars = a->content.empty() ? 0 : a->content.back().first;
  if (a->content.size() >= kBitsetThreshold) {
    a->has_bitsets = true;
    a->content_all.resize(vocab_size);
    a->content_upto.resize(kUptoLimit + 1);
    for (auto& b : a->content_upto) b.resize(vocab_size);
    for (const auto& [chars, token] : a->content) {
      a->content_all.set(size_t(token));
      for (int32_t k = std::max(chars, 0); k <= kUptoLimit; ++k) a->content_upto[size_t(k)].set(size_t(token));
    }
  }
  std::map<std::pair<int32_t, int32_t>, std::vector<Trie::Entry>> groups;
  std::map<int32_t, std::vector<Trie::Entry>> merged;
  for (const ExitEntry& e : exits) {
    groups[{e.state, e.chars}].push_back(e.rest);
    merged[e.state].push_back(e.rest);
  }
  for (auto& [k, entries] : groups) a->by_count.push_back({k.first, k.second, std::make_unique<Trie>(std::move(entries))});
  for (auto& [k, entries] : merged) a->merged.push_back({k, -1, std::make_unique<Trie>(std::move(entries))});
  const StringAnalysis& out = *a;
  map_.emplace(key, std::move(a));
  return out;
}

namespace {

std::shared_ptr<Vocabulary> build_vocabulary(const Tokenizer& tokenizer) {
  auto v = std::make_shared<Vocabulary>();
  v->size = tokenizer.vocab_size();
  v->bytes.resize(v->size);
  const auto& types = tokenizer.data().types;
  std::vector<Trie::Entry> entries;
  entries.reserve(v->size);
  for (size_t id = 0; id < v->size; ++id) {
    if (tokenizer.is_eog(int32_t(id))) v->eog.push_back(int32_t(id));
    const TokenType type = id < types.size() ? types[id] : TokenType::normal;
    if (type != TokenType::normal && type != TokenType::byte) continue;
    v->bytes[id] = tokenizer.token_bytes(int32_t(id));
  }
  for (size_t id = 0; id < v->size; ++id) {
    if (!v->bytes[id].empty()) entries.push_back({v->bytes[id], int32_t(id)});
  }
  v->trie = std::make_unique<Trie>(std::move(entries));
  // The analyses every JSON constraint needs: string characters from the start of a token, and
  // strings opened by a token starting with `"` or ` "`.
  const auto plain = json_string_dfa();
  v->cache.get(*v->trie, 0, *plain, plain->start, v->size);
  for (const char* open : {"\"", " \""}) {
    uint32_t node = 0;
    for (const char* p = open; *p != '\0' && node != UINT32_MAX; ++p) {
      const Trie::Node& n = v->trie->node(node);
      uint32_t next = UINT32_MAX;
      for (uint32_t k = 0; k < n.child_count; ++k) {
        if (v->trie->child_byte(n.child_begin + k) == uint8_t(*p)) next = v->trie->child_node(n.child_begin + k);
      }
      node = next;
    }
    if (node != UINT32_MAX) v->cache.get(*v->trie, node, *plain, plain->start, v->size);
  }
  return v;
}

uint64_t fingerprint(const Tokenizer& tokenizer) {
  const size_t n = tokenizer.vocab_size();
  uint64_t h = 1469598103934665603ull ^ n;
  const size_t step = std::max<size_t>(1, n / 64);
  for (size_t id = 0; id < n; id += step) {
    for (char c : tokenizer.data().tokens[id]) h = (h ^ uint8_t(c)) * 1099511628211ull;
    h = (h ^ 0xFF) * 1099511628211ull;
  }
  for (int32_t id : tokenizer.data().eog_ids) h = (h ^ uint64_t(uint32_t(id))) * 1099511628211ull;
  return h;
}

}  // namespace

std::shared_ptr<Vocabulary> vocabulary_for(const Tokenizer& tokenizer) {
  static std::mutex mutex;
  struct Slot {
    const Tokenizer* tokenizer;
    uint64_t fingerprint;
    std::shared_ptr<Vocabulary> vocabulary;
  };
  static std::vector<Slot> slots;
  constexpr size_t kMaxSlots = 8;
  const uint64_t fp = fingerprint(tokenizer);
  std::lock_guard<std::mutex> lock(mutex);
  for (const Slot& s : slots) {
    if (s.tokenizer == &tokenizer && s.fingerprint == fp && s.vocabulary->size == tokenizer.vocab_size()) return s.vocabulary;
  }
  auto v = build_vocabulary(tokenizer);
  if (slots.size() >= kMaxSlots) slots.erase(slots.begin());
  slots.push_back({&tokenizer, fp, v});
  return v;
}

}  // namespace slm::grammar
