#include "slm/tokenizer/jinja_lexer.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "slm/tokenizer/jinja_value.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm::jinja {

namespace {

// Two-character operators first: the lexer takes the longest match.
constexpr std::string_view kOperators2[] = {"//", "**", "==", "!=", "<=", ">="};
constexpr std::string_view kOperators1 = "+-/*%~[](){}<>=.:|,;";

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The code point at `pos` and its length in bytes (invalid bytes: U+FFFD, one byte).
char32_t code_point_at(std::string_view s, size_t pos, size_t& length) {
  const auto byte = uint8_t(s[pos]);
  if (byte < 0x80) {
    length = 1;
    return byte;
  }
  const int32_t cp = utf8::decode(s.substr(pos), length);
  return cp < 0 ? U'\uFFFD' : char32_t(cp);
}

// Length of `s` without its trailing Python whitespace (str.rstrip()).
size_t rstripped_length(std::string_view s) {
  size_t keep = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t length = 1;
    const char32_t c = code_point_at(s, pos, length);
    pos += length;
    if (!is_space(c)) keep = pos;
  }
  return keep;
}

// Position after the Python whitespace starting at `pos`.
size_t skip_spaces(std::string_view s, size_t pos) {
  while (pos < s.size()) {
    size_t length = 1;
    if (!is_space(code_point_at(s, pos, length))) break;
    pos += length;
  }
  return pos;
}

bool all_spaces(std::string_view s) { return !s.empty() && skip_spaces(s, 0) == s.size(); }

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // As jinja2 does: every newline becomes "\n", and one trailing newline is dropped.
    src_.reserve(source.size());
    for (size_t k = 0; k < source.size(); ++k) {
      if (source[k] == '\r') {
        src_.push_back('\n');
        if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
      } else {
        src_.push_back(source[k]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t k = 0; k < src_.size(); ++k) {
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
    }
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t open = find_opener(pos);
      if (open == std::string::npos) {
        emit_text(std::string_view(src_).substr(pos), pos);
        break;
      }
      const char kind = src_[open + 1];
      size_t after = open + 2;
      const char sign = after < src_.size() && (src_[after] == '-' || src_[after] == '+') ? src_[after] : 0;
      std::string_view text = std::string_view(src_).substr(pos, open - pos);
      if (sign == '-') {
        text = text.substr(0, rstripped_length(text));
      } else if (sign != '+' && kind != '{') {
        text = lstrip_line(text, line_starting);
      }
      emit_text(text, pos);
      if (sign != 0) ++after;
      if (kind == '#') {
        pos = comment(open, after, line_starting);
      } else {
        pos = tag(kind == '{' ? TokenKind::var_begin : TokenKind::block_begin, open, after, line_starting);
      }
    }
    Token end;
    end.kind = TokenKind::end;
    locate(end, src_.size());
    tokens_.push_back(end);
    return std::move(tokens_);
  }

 private:
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;

  [[noreturn]] void error_at(size_t pos, const std::string& message) const {
    Token t;
    locate(t, pos);
    fail(ErrorKind::format, "chat template line {}, column {}: {}", t.line, t.column, message);
  }

  void locate(Token& t, size_t pos) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
    const size_t line = size_t(it - line_starts_.begin());
    t.line = int(line);
    t.column = int(count_code_points(std::string_view(src_).substr(line_starts_[line - 1], pos - line_starts_[line - 1])) + 1);
  }

  size_t find_opener(size_t pos) const {
    while (true) {
      const size_t k = src_.find('{', pos);
      if (k == std::string::npos || k + 1 >= src_.size()) return std::string::npos;
      const char next = src_[k + 1];
      if (next == '{' || next == '%' || next == '#') return k;
      pos = k + 1;
    }
  }

  // lstrip_blocks: spaces between the start of a line and a block or comment tag are dropped.
  static std::string_view lstrip_line(std::string_view text, bool line_starting) {
    const size_t newline = text.rfind('\n');
    const size_t line_pos = newline == std::string_view::npos ? 0 : newline + 1;
    if ((line_pos > 0 || line_starting) && all_spaces(text.substr(line_pos))) return text.substr(0, line_pos);
    return text;
  }

  void emit_text(std::string_view text, size_t pos) {
    if (text.empty()) return;
    Token t;
    t.kind = TokenKind::text;
    t.value = std::string(text);
    locate(t, pos);
    tokens_.push_back(std::move(t));
  }

  // After a closing tag: `-` strips all whitespace, `+` keeps it, else one newline is dropped
  // (trim_blocks) for block and comment tags.
  size_t after_close(size_t pos, char sign, bool trim, bool& line_starting) {
    const size_t start = pos;
    if (sign == '-') {
      pos = skip_spaces(src_, pos);
    } else if (sign != '+' && trim && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    line_starting = pos > start && src_[pos - 1] == '\n';
    return pos;
  }

  size_t comment(size_t open, size_t pos, bool& line_starting) {
    const size_t close = src_.find("#}", pos);
    if (close == std::string::npos) error_at(open, "missing end of comment tag");
    char sign = 0;
    if (close > pos && (src_[close - 1] == '-' || src_[close - 1] == '+')) sign = src_[close - 1];
    return after_close(close + 2, sign, true, line_starting);
  }

  // Lexes the tokens of a {{ }} or {% %} tag; returns the position after it.
  size_t tag(TokenKind begin, size_t open, size_t pos, bool& line_starting) {
    const bool is_block = begin == TokenKind::block_begin;
    const std::string_view closer = is_block ? "%}" : "}}";
    Token b;
    b.kind = begin;
    locate(b, open);
    tokens_.push_back(b);
    const size_t first_token = tokens_.size();
    std::vector<char> brackets;
    while (true) {
      pos = skip_spaces(src_, pos);
      if (pos >= src_.size()) error_at(open, is_block ? "missing end of block tag '%}'" : "missing end of variable tag '}}'");
      if (brackets.empty()) {
        char sign = 0;
        size_t at = pos;
        if ((src_[pos] == '-' || (is_block && src_[pos] == '+')) && src_.compare(pos + 1, 2, closer) == 0) {
          sign = src_[pos];
          at = pos + 1;
        }
        if (src_.compare(at, 2, closer) == 0) {
          Token e;
          e.kind = is_block ? TokenKind::block_end : TokenKind::var_end;
          locate(e, pos);
          tokens_.push_back(e);
          const size_t next = after_close(at + 2, sign, is_block, line_starting);
          if (is_block && tokens_.size() == first_token + 2 && tokens_[first_token].kind == TokenKind::name &&
              tokens_[first_token].value == "raw") {
            tokens_.resize(first_token - 1);
            return raw(open, next, line_starting);
          }
          return next;
        }
      }
      pos = token(pos, brackets);
    }
  }

  // The text of a {% raw %} block up to its {% endraw %}.
  size_t raw(size_t open, size_t pos, bool& line_starting) {
    size_t search = pos;
    while (true) {
      const size_t k = src_.find("{%", search);
      if (k == std::string::npos) error_at(open, "missing {% endraw %} for {% raw %}");
      size_t p = k + 2;
      char open_sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) open_sign = src_[p++];
      p = skip_spaces(src_, p);
      if (src_.compare(p, 6, "endraw") != 0) {
        search = k + 2;
        continue;
      }
      p = skip_spaces(src_, p + 6);
      char close_sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) close_sign = src_[p++];
      if (src_.compare(p, 2, "%}") != 0) {
        search = k + 2;
        continue;
      }
      std::string_view text = std::string_view(src_).substr(pos, k - pos);
      if (open_sign == '-') {
        text = text.substr(0, rstripped_length(text));
      } else if (open_sign != '+') {
        text = lstrip_line(text, false);
      }
      emit_text(text, pos);
      return after_close(p + 2, close_sign, true, line_starting);
    }
  }

  size_t token(size_t pos, std::vector<char>& brackets) {
    Token t;
    locate(t, pos);
    const char c = src_[pos];
    if (is_name_start(c)) {
      size_t end = pos;
      while (end < src_.size() && is_name_char(src_[end])) ++end;
      t.kind = TokenKind::name;
      t.value = src_.substr(pos, end - pos);
      tokens_.push_back(std::move(t));
      return end;
    }
    if (is_digit(c)) return number(pos, std::move(t));
    if (c == '\'' || c == '"') return string(pos, std::move(t));
    for (std::string_view op : kOperators2) {
      if (src_.compare(pos, op.size(), op) == 0) {
        t.kind = TokenKind::op;
        t.value = std::string(op);
        tokens_.push_back(std::move(t));
        return pos + op.size();
      }
    }
    if (kOperators1.find(c) != std::string_view::npos) {
      if (c == '(' || c == '[' || c == '{') {
        brackets.push_back(c);
      } else if (c == ')' || c == ']' || c == '}') {
        const char expected = c == ')' ? '(' : c == ']' ? '[' : '{';
        if (brackets.empty() || brackets.back() != expected) error_at(pos, fmt::format("unexpected '{}'", c));
        brackets.pop_back();
      }
      t.kind = TokenKind::op;
      t.value = std::string(1, c);
      tokens_.push_back(std::move(t));
      return pos + 1;
    }
    size_t length = 1;
    const char32_t cp = code_point_at(src_, pos, length);
    error_at(pos, fmt::format("unexpected character U+{:04X}", uint32_t(cp)));
  }

  // Digits with optional single underscores between them; returns the end position.
  size_t digits(size_t pos, std::string& out, bool (*accept)(char)) const {
    const size_t start = pos;
    while (pos < src_.size()) {
      if (accept(src_[pos])) {
        out.push_back(src_[pos++]);
      } else if (src_[pos] == '_' && pos > start && pos + 1 < src_.size() && accept(src_[pos + 1])) {
        ++pos;
      } else {
        break;
      }
    }
    return pos;
  }

  size_t number(size_t pos, Token t) {
    const bool after_dot = pos > 0 && src_[pos - 1] == '.';
    std::string text;
    size_t end = pos;
    const char prefix = pos + 1 < src_.size() && src_[pos] == '0' ? char(src_[pos + 1] | 0x20) : 0;
    if (prefix == 'b' || prefix == 'o' || prefix == 'x') {
      auto accept = prefix == 'b'   ? +[](char c) { return c == '0' || c == '1'; }
                    : prefix == 'o' ? +[](char c) { return c >= '0' && c <= '7'; }
                                    : +[](char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); };
      size_t p = pos + 2;
      if (p < src_.size() && src_[p] == '_') ++p;
      end = digits(p, text, accept);
      if (text.empty()) error_at(pos, "invalid integer literal");
      errno = 0;
      const unsigned long long v = std::strtoull(text.c_str(), nullptr, prefix == 'b' ? 2 : prefix == 'o' ? 8 : 16);
      if (errno != 0 || v > uint64_t(INT64_MAX)) error_at(pos, "integer literal too large");
      t.kind = TokenKind::integer;
      t.int_value = int64_t(v);
      tokens_.push_back(std::move(t));
      return end;
    }
    end = digits(pos, text, is_digit);
    bool is_float = false;
    if (!after_dot && end + 1 < src_.size() && src_[end] == '.' && is_digit(src_[end + 1])) {
      text.push_back('.');
      end = digits(end + 1, text, is_digit);
      is_float = true;
    }
    if (!after_dot && end < src_.size() && (src_[end] | 0x20) == 'e') {
      size_t p = end + 1;
      std::string exponent = "e";
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) exponent.push_back(src_[p++]);
      if (p < src_.size() && is_digit(src_[p])) {
        end = digits(p, exponent, is_digit);
        text += exponent;
        is_float = true;
      }
    }
    if (is_float) {
      t.kind = TokenKind::floating;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos) {
        // jinja2 reads "0" and then the rest as a second number, which no expression accepts
        error_at(pos, "invalid integer literal with a leading zero");
      }
      errno = 0;
      const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
      if (errno != 0 || v > uint64_t(INT64_MAX)) error_at(pos, "integer literal too large");
      t.kind = TokenKind::integer;
      t.int_value = int64_t(v);
    }
    tokens_.push_back(std::move(t));
    return end;
  }

  // A quoted literal with Python's escapes (as jinja2 reads them: "unicode-escape").
  size_t string(size_t pos, Token t) {
    const char quote = src_[pos];
    std::string out;
    size_t p = pos + 1;
    auto hex = [&](size_t at, int n) -> uint32_t {
      uint32_t v = 0;
      for (int k = 0; k < n; ++k) {
        const size_t q = at + size_t(k);
        if (q >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[q]))) {
          error_at(at - 2, "truncated \\x, \\u or \\U escape in a string literal");
        }
        const char c = char(src_[q] | 0x20);
        v = v * 16 + uint32_t(c <= '9' ? c - '0' : c - 'a' + 10);
      }
      return v;
    };
    while (true) {
      if (p >= src_.size()) error_at(pos, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) error_at(pos, "unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': utf8::append(out, hex(p, 2)); p += 2; break;
        case 'u': utf8::append(out, hex(p, 4)); p += 4; break;
        case 'U': {
          const uint32_t v = hex(p, 8);
          if (v > 0x10FFFF) error_at(p - 2, "\\U escape out of range");
          utf8::append(out, v);
          p += 8;
          break;
        }
        case 'N':
          fail(ErrorKind::unsupported, "chat template: \\N{{...}} escapes in string literals are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = uint32_t(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k) v = v * 8 + uint32_t(src_[p++] - '0');
            utf8::append(out, v);
          } else {
            out.push_back('\\');
            --p;  // the character after the backslash is kept as it is
          }
      }
    }
    t.kind = TokenKind::string;
    t.value = std::move(out);
    tokens_.push_back(std::move(t));
    return p + 1;
  }
};

}  // namespace

std::vector<Token> lex(std::string_view source) { return Lexer(source).run(); }

}  // namespace slm::jinja
