#include "slm/tokenizer/sentencepiece.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "slm/tokenizer/decoder.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {

uint64_t pair_key(int32_t left, int32_t right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }

struct Symbol {
  int32_t id;     // ranked mode: token id (-1 unknown); scored mode: unused
  uint32_t start; // byte offset in the piece
  uint32_t size;  // bytes; 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

struct Candidate {
  double priority;  // higher first
  int32_t left;
  int32_t right;
  uint32_t size;    // joined size when queued (stale check)
  int32_t id;
  int32_t left_id = -1;   // ranked mode: the pair's ids when queued (stale check)
  int32_t right_id = -1;
  bool operator<(const Candidate& o) const {  // std::push_heap keeps the largest on top
    return priority != o.priority ? priority < o.priority : left > o.left;
  }
};

struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Appends the characters of `piece` as symbols (an invalid byte is a symbol of its own).
void split_chars(std::string_view piece, std::vector<Symbol>& symbols) {
  symbols.clear();
  size_t i = 0;
  while (i < piece.size()) {
    const utf8::Seq seq = utf8::classify(piece.substr(i));
    const size_t n = seq.kind == utf8::SeqKind::valid ? seq.length : 1;
    const auto index = int32_t(symbols.size());
    symbols.push_back({-1, uint32_t(i), uint32_t(n), index - 1, index + 1});
    i += n;
  }
  if (!symbols.empty()) symbols.back().next = -1;
}

void find_chars_before_space(const TokenIndex& tokens, std::unordered_set<int32_t>& out) {
  for (const auto& [text, id] : tokens) {
    size_t at = 0;
    while ((at = text.find("\xE2\x96\x81", at + 1)) != std::string_view::npos) {
      size_t back = at - 1;
      while (back > 0 && (static_cast<uint8_t>(text[back]) & 0xC0) == 0x80 && at - back < 4) --back;
      size_t length = 0;
      const int32_t cp = utf8::decode(text.substr(back, at - back), length);
      out.insert(cp);  // -1 for an invalid byte: such boundaries are never cut
    }
  }
}

}  // namespace

std::array<int32_t, 256> find_byte_tokens(const TokenizerData& data, const TokenIndex& ids) {
  std::array<int32_t, 256> out;
  out.fill(-1);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string text = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    auto it = ids.find(text);
    if (it != ids.end()) out[b] = it->second;
  }
  (void)data;
  return out;
}

SentencePieceBpe::SentencePieceBpe(const TokenizerData& data, const TokenIndex& ids)
    : data_(&data), ids_(&ids), ranked_(!data.merges.empty()) {
  byte_ids_ = find_byte_tokens(data, ids);
  if (ranked_) {
    merges_.reserve(data.merges.size() * 2);
    std::string joined;
    for (size_t rank = 0; rank < data.merges.size(); ++rank) {
      const std::string& m = data.merges[rank];
      const size_t space = m.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 >= m.size() || m.find(' ', space + 1) != std::string::npos) {
        fail(ErrorKind::format, "expected merge {} to be 'left right', found '{}'", rank, m);
      }
      const std::string_view left(m.data(), space);
      const std::string_view right(m.data() + space + 1, m.size() - space - 1);
      joined.assign(left).append(right);
      auto l = ids.find(left);
      auto r = ids.find(right);
      auto j = ids.find(joined);
      if (l == ids.end() || r == ids.end() || j == ids.end()) {
        fail(ErrorKind::format, "merge {} '{}' references a token not in the vocabulary", rank, m);
      }
      merges_.emplace(pair_key(l->second, r->second), Merge{int32_t(rank), j->second});
    }
    find_chars_before_space(ids, before_space_);
    return;
  }
  if (data.scores.size() != data.tokens.size()) {
    fail(ErrorKind::invalid_argument, "expected {} token scores (one per token) for a SentencePiece BPE without merges, found {}",
         data.tokens.size(), data.scores.size());
  }
  mergeable_.reserve(data.tokens.size() * 2);
  for (size_t id = 0; id < data.tokens.size(); ++id) {
    const TokenType t = data.types[id];
    if ((t != TokenType::normal && t != TokenType::user_defined) || !std::isfinite(data.scores[id])) continue;
    mergeable_.emplace(data.tokens[id], int32_t(id));
  }
  find_chars_before_space(mergeable_, before_space_);
}

constexpr std::string_view kSpace = "\xE2\x96\x81";

void SentencePieceBpe::encode(std::string_view piece, std::vector<int32_t>& out) const {
  size_t start = 0;
  size_t at = 0;
  while ((at = piece.find(kSpace, at + 1)) != std::string_view::npos) {
    size_t char_start = 0;
    size_t length = 0;
    size_t back = at;
    while (back > start && (static_cast<uint8_t>(piece[back - 1]) & 0xC0) == 0x80 && at - back < 3) --back;
    char_start = back > start ? back - 1 : start;
    const int32_t cp = utf8::decode(piece.substr(char_start, at - char_start), length);
    if (cp >= 0 && char_start + length == at && before_space_.count(cp) == 0) {
      encode_word(piece.substr(start, at - start), out);
      start = at;
    }
  }
  encode_word(piece.substr(start), out);
}

void SentencePieceBpe::encode_word(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ranked_) {
    encode_ranked(piece, out);
  } else {
    encode_scored(piece, out);
  }
}

void SentencePieceBpe::push_unknown(std::string_view text, std::vector<int32_t>& out) const {
  if (data_->byte_fallback) {
    bool all = true;
    for (char c : text) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
    if (all) {
      for (char c : text) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
      return;
    }
  }
  if (data_->unk_id >= 0) out.push_back(data_->unk_id);  // else the text is dropped
}

void SentencePieceBpe::encode_ranked(std::string_view piece, std::vector<int32_t>& out) const {
  Scratch& s = scratch();
  thread_local std::vector<Symbol> chars;
  split_chars(piece, chars);
  // Initial symbols: the token of each character, else its byte tokens or the unknown token
  // (consecutive unknown characters fuse into one).
  auto& symbols = s.symbols;
  symbols.clear();
  thread_local std::vector<int32_t> fallback;
  for (const Symbol& c : chars) {
    const std::string_view text = piece.substr(c.start, c.size);
    auto it = ids_->find(text);
    fallback.clear();
    if (it != ids_->end()) {
      fallback.push_back(it->second);
    } else {
      push_unknown(text, fallback);
      if (fallback.size() == 1 && fallback[0] == data_->unk_id && !symbols.empty() && symbols.back().id == data_->unk_id) {
        symbols.back().size += c.size;
        continue;
      }
    }
    for (int32_t id : fallback) {
      const auto index = int32_t(symbols.size());
      symbols.push_back({id, c.start, c.size, index - 1, index + 1});
    }
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  auto& heap = s.heap;
  heap.clear();
  auto push_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    heap.push_back({-double(it->second.rank), left, right, 0, it->second.id, symbols[left].id, symbols[right].id});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = symbols[c.left];
    if (left.size == 0 || left.next != c.right || left.id != c.left_id) continue;
    Symbol& right = symbols[c.right];
    if (right.id != c.right_id) continue;
    left.id = c.id;
    left.size += right.size;
    right.size = 0;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    push_pair(left.prev);
    push_pair(c.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

void SentencePieceBpe::encode_scored(std::string_view piece, std::vector<int32_t>& out) const {
  Scratch& s = scratch();
  auto& symbols = s.symbols;
  split_chars(piece, symbols);
  auto& heap = s.heap;
  heap.clear();
  auto push_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const uint32_t size = symbols[left].size + symbols[right].size;
    auto it = mergeable_.find(piece.substr(symbols[left].start, size));
    if (it == mergeable_.end()) return;
    heap.push_back({double(data_->scores[it->second]), left, right, size, it->second});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = symbols[c.left];
    if (left.size == 0 || left.next != c.right) continue;
    Symbol& right = symbols[c.right];
    if (right.size == 0 || left.size + right.size != c.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    push_pair(left.prev);
    push_pair(c.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view text = piece.substr(symbols[i].start, symbols[i].size);
    auto it = mergeable_.find(text);
    if (it != mergeable_.end()) {
      out.push_back(it->second);
    } else {
      push_unknown(text, out);
    }
  }
}

}  // namespace slm
