// The chat-template lexer: splits a Jinja2 template into text and the tokens of its {{ }} and
// {% %} tags, applying the whitespace rules transformers renders with (trim_blocks, lstrip_blocks,
// `-`/`+` markers), dropping {# #} comments and passing {% raw %} blocks through as text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slm::jinja {

enum class TokenKind : uint8_t {
  text,         // template data between tags
  var_begin,    // {{
  var_end,      // }}
  block_begin,  // {%
  block_end,    // %}
  name,
  integer,
  floating,
  string,       // value: the literal's text with escapes resolved
  op,           // value: the operator, e.g. "==", "//", "("
  end,          // end of the template
};

struct Token {
  TokenKind kind = TokenKind::end;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;
  int column = 1;
};

// Fails with Error(format) "line L, column C: ..." on malformed input.
std::vector<Token> lex(std::string_view source);

}  // namespace slm::jinja
