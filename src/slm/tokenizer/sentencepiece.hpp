// SentencePiece-style models over normalized text (spaces already "▁"): BPE over characters with
// byte fallback, and Unigram (the most probable segmentation under the token scores).
//
// BPE merges pairs of adjacent symbols, starting from the characters of a piece, in one of two
// orders: with merges (tokenizer.json), the listed pair of lowest rank first; with scores only
// (GGUF tokenizer.ggml.model "llama", as SentencePiece and llama.cpp do), the pair whose joined
// text is the normal or user-defined token of highest score first. Ties go to the leftmost pair.
// A character with no token becomes its <0xXX> byte tokens when byte_fallback is set and all of
// them exist, else the unknown token (consecutive unknown characters give one unknown token).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "slm/tokenizer/tokenizer.hpp"

namespace slm {

// Token ids by text, first id of equal texts; the views point into TokenizerData::tokens.
using TokenIndex = std::unordered_map<std::string_view, int32_t>;

// The <0xXX> byte tokens of a vocabulary (-1 where missing).
std::array<int32_t, 256> find_byte_tokens(const TokenizerData& data, const TokenIndex& ids);

class SentencePieceBpe {
 public:
  // `data` and `ids` must outlive the object.
  SentencePieceBpe(const TokenizerData& data, const TokenIndex& ids);
  void encode(std::string_view piece, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_ranked(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_scored(std::string_view piece, std::vector<int32_t>& out) const;
  void push_unknown(std::string_view text, std::vector<int32_t>& out) const;

  const TokenizerData* data_;
  const TokenIndex* ids_;
  bool ranked_ = false;                        // merges given
  std::unordered_map<uint64_t, Merge> merges_; // (left, right) -> rank, result
  TokenIndex mergeable_;                       // scores only: normal and user-defined tokens
  std::array<int32_t, 256> byte_ids_{};
  // Characters some token has right before a "▁": before any other character a "▁" starts a word
  // no merge can cross, so words are merged separately (same result, far smaller queues).
  std::unordered_set<int32_t> before_space_;
};

class Unigram {
 public:
  // Every token with a finite score takes part; `data` and `ids` must outlive the object.
  Unigram(const TokenizerData& data, const TokenIndex& ids);
  void encode(std::string_view piece, std::vector<int32_t>& out) const;

 private:
  const TokenizerData* data_;
  const TokenIndex* ids_;
  // A byte trie over the tokens with a finite score: edges (node << 8 | byte) -> node, and the
  // token that ends at each node (-1: none).
  std::unordered_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> node_token_;
  double unk_score_ = 0;
  std::array<int32_t, 256> byte_ids_{};
};

}  // namespace slm
