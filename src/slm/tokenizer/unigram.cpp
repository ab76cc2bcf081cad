// Unigram: the segmentation of a piece into tokens whose scores (log probabilities) sum highest,
// found by Viterbi over every token that starts at each character. A character no token starts
// with is an unknown token scored 10 below the lowest score; unknown runs fuse, then become byte
// tokens (byte_fallback) or one unknown token. Ties keep the path found first, which ends in the
// longer last token, as Hugging Face tokenizers does.
#include <cmath>
#include <limits>
#include <string>

#include "slm/tokenizer/sentencepiece.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {

constexpr double kUnknownPenalty = 10.0;

struct Node {
  double score;
  int32_t start;  // -1: not reached
  int32_t id;
};

}  // namespace

Unigram::Unigram(const TokenizerData& data, const TokenIndex& ids) : data_(&data), ids_(&ids) {
  if (data.scores.size() != data.tokens.size()) {
    fail(ErrorKind::invalid_argument, "expected {} token scores (one per token) for a Unigram model, found {}",
         data.tokens.size(), data.scores.size());
  }
  double lowest = std::numeric_limits<double>::infinity();
  node_token_.push_back(-1);  // the root
  for (size_t id = 0; id < data.tokens.size(); ++id) {
    const double score = data.scores[id];
    const std::string& text = data.tokens[id];
    if (!std::isfinite(score) || text.empty()) continue;
    uint64_t node = 0;
    for (char c : text) {
      const uint64_t key = node << 8 | static_cast<uint8_t>(c);
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        it = edges_.emplace(key, int32_t(node_token_.size())).first;
        node_token_.push_back(-1);
      }
      node = uint64_t(it->second);
    }
    if (node_token_[node] < 0) node_token_[node] = int32_t(id);  // the first of equal texts
    lowest = std::min(lowest, score);
  }
  if (node_token_.size() == 1) fail(ErrorKind::invalid_argument, "a Unigram model needs tokens with scores, found none");
  unk_score_ = lowest - kUnknownPenalty;
  byte_ids_ = find_byte_tokens(data, ids);
}

void Unigram::encode(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  const size_t n = piece.size();
  thread_local std::vector<Node> best;
  best.assign(n + 1, Node{0.0, -1, -1});
  best[0].start = 0;
  for (size_t start = 0; start < n;) {
    const utf8::Seq seq = utf8::classify(piece.substr(start));
    const size_t char_length = seq.kind == utf8::SeqKind::valid ? seq.length : 1;
    if (best[start].start < 0) {  // unreachable (cannot happen: every character is reachable)
      start += char_length;
      continue;
    }
    const double base = best[start].score;
    bool single = false;
    uint64_t node = 0;
    for (size_t length = 1; start + length <= n; ++length) {
      auto edge = edges_.find(node << 8 | static_cast<uint8_t>(piece[start + length - 1]));
      if (edge == edges_.end()) break;
      node = uint64_t(edge->second);
      const int32_t id = node_token_[node];
      if (id < 0) continue;
      Node& target = best[start + length];
      const double candidate = base + data_->scores[id];
      if (target.start < 0 || candidate > target.score) target = {candidate, int32_t(start), id};
      if (length == char_length) single = true;
    }
    if (!single) {
      Node& target = best[start + char_length];
      const double candidate = base + unk_score_;
      if (target.start < 0 || candidate > target.score) target = {candidate, int32_t(start), data_->unk_id};
    }
    start += char_length;
  }
  // Back from the end: tokens in reverse, unknown runs fused.
  thread_local std::vector<std::pair<size_t, size_t>> spans;  // start, end
  thread_local std::vector<int32_t> span_ids;
  spans.clear();
  span_ids.clear();
  const int32_t unk = data_->unk_id;
  for (size_t end = n; end > 0;) {
    const Node& node = best[end];
    const auto start = size_t(node.start);
    if (unk >= 0 && node.id == unk && !span_ids.empty() && span_ids.back() == unk && spans.back().first == end) {
      spans.back().first = start;  // fuse with the unknown run after it
    } else {
      spans.emplace_back(start, end);
      span_ids.push_back(node.id);
    }
    end = start;
  }
  for (size_t k = spans.size(); k-- > 0;) {
    const std::string_view text = piece.substr(spans[k].first, spans[k].second - spans[k].first);
    int32_t id = span_ids[k];
    if (id == unk || id < 0) {
      auto it = ids_->find(text);
      if (it != ids_->end() && size_t(it->second) < data_->scores.size() && std::isfinite(data_->scores[it->second])) {
        out.push_back(it->second);
        continue;
      }
      if (data_->byte_fallback) {
        bool all = true;
        for (char c : text) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
        if (all) {
          for (char c : text) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
          continue;
        }
      }
      if (unk >= 0) out.push_back(unk);
      continue;
    }
    out.push_back(id);
  }
}

}  // namespace slm
