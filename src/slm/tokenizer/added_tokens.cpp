#include "slm/tokenizer/added_tokens.hpp"

#include <utf8proc.h>

#include "slm/tokenizer/utf8.hpp"

namespace slm {

bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

namespace {

bool is_word_char(int32_t cp) {
  if (cp < 0) return false;
  if (cp == '_') return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// The code point of the character that ends just before `end` (-1 when none or invalid), and its
// start in `start`.
int32_t char_before(std::string_view text, size_t end, size_t& start) {
  size_t i = end;
  int back = 0;
  while (i > 0 && back < 4) {
    --i;
    ++back;
    if ((static_cast<uint8_t>(text[i]) & 0xC0) != 0x80) break;
  }
  size_t length = 0;
  const int32_t cp = utf8::decode(text.substr(i, end - i), length);
  if (cp < 0 || i + length != end) {
    start = end - 1;
    return -1;
  }
  start = i;
  return cp;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const TokenizerData& data) : AddedTokenMatcher(data, nullptr, nullptr) {}

AddedTokenMatcher::AddedTokenMatcher(const TokenizerData& data, const std::function<bool(int32_t)>& include,
                                     const std::function<std::string(int32_t)>& text_of) {
  root_.fill(-1);
  nodes_.emplace_back();
  std::string transformed;
  auto text_for = [&](size_t id) -> const std::string& {
    if (!text_of) return data.tokens[id];
    transformed = text_of(int32_t(id));
    return transformed;
  };
  for (size_t id = 0; id < data.tokens.size(); ++id) {
    const TokenType type = data.types[id];
    if (type != TokenType::control && type != TokenType::user_defined) continue;
    if (include && !include(int32_t(id))) continue;
    const std::string& text = text_for(id);
    if (text.empty()) continue;
    int32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      const uint8_t b = static_cast<uint8_t>(text[i]);
      int32_t next = child(node, b);
      if (next < 0) {
        next = int32_t(nodes_.size());
        nodes_.emplace_back();
        nodes_[node].children.emplace_back(b, next);
        if (node == 0) root_[b] = next;
      }
      node = next;
    }
    if (nodes_[node].token >= 0) continue;  // the first of several tokens with one text wins
    nodes_[node].token = int32_t(id);
    nodes_[node].control = type == TokenType::control;
  }
  for (const auto& options : data.added_options) {
    if (options.id < 0 || size_t(options.id) >= data.tokens.size()) continue;
    if (include && !include(options.id)) continue;
    const std::string& text = text_for(size_t(options.id));
    int32_t node = 0;
    for (size_t i = 0; i < text.size() && node >= 0; ++i) node = child(node, static_cast<uint8_t>(text[i]));
    if (node > 0 && nodes_[node].token == options.id) nodes_[node].options = options;
  }
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t byte) const {
  if (node == 0) return root_[byte];
  for (const auto& [b, next] : nodes_[node].children) {
    if (b == byte) return next;
  }
  return -1;
}

void AddedTokenMatcher::split(std::string_view text, bool parse_control, std::vector<Part>& parts) const {
  parts.clear();
  size_t segment_start = 0;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    int32_t node = root_[static_cast<uint8_t>(text[i])];
    if (node < 0 || nodes_.size() <= 1) {
      ++i;
      continue;
    }
    int32_t best = -1;
    size_t best_end = 0;
    size_t j = i + 1;
    while (true) {
      const Node& nd = nodes_[node];
      if (nd.token >= 0 && (parse_control || !nd.control)) {
        bool ok = true;
        if (nd.options.single_word) {
          size_t s = 0;
          size_t length = 0;
          const int32_t before = i > 0 ? char_before(text, i, s) : -1;
          const int32_t after = j < n ? utf8::decode(text.substr(j), length) : -1;
          ok = !is_word_char(before) && !is_word_char(after);
        }
        if (ok) {
          best = node;
          best_end = j;
        }
      }
      if (j >= n) break;
      node = child(node, static_cast<uint8_t>(text[j]));
      if (node < 0) break;
      ++j;
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const Node& match = nodes_[best];
    size_t start = i;
    size_t end = best_end;
    if (match.options.lstrip) {
      while (start > segment_start) {
        size_t s = 0;
        const int32_t cp = char_before(text, start, s);
        if (cp < 0 || !is_white_space(uint32_t(cp)) || s < segment_start) break;
        start = s;
      }
    }
    if (match.options.rstrip) {
      while (end < n) {
        size_t length = 0;
        const int32_t cp = utf8::decode(text.substr(end), length);
        if (cp < 0 || !is_white_space(uint32_t(cp))) break;
        end += length;
      }
    }
    if (start > segment_start) parts.push_back({text.substr(segment_start, start - segment_start), -1});
    parts.push_back({{}, match.token});
    segment_start = i = end;
  }
  if (segment_start < n) parts.push_back({text.substr(segment_start), -1});
}

}  // namespace slm
