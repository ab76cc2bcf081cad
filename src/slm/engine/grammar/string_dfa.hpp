// Byte-level automata for the text between a JSON string's quotes: the plain JSON string (any
// character, escapes, valid UTF-8 only) and the strings a `pattern` or `format` allows.
//
// Regular expressions follow the ECMAScript subset JSON Schema uses, restricted to: literal
// characters, `.`, classes `[...]` / `[^...]` with ranges, the escapes \d \w \s \D \W \S \n \r \t
// \f \v \xHH \uHHHH and escaped punctuation, groups `(...)` and `(?:...)`, alternation `|`,
// quantifiers `* + ? {n} {n,} {n,m}` (a lazy `?` after them changes nothing: only whole strings are
// matched), `^` at the start and `$` at the end of a top-level alternative. A pattern matches
// anywhere in the string unless anchored, as JSON Schema says. Look-around, back-references, word
// boundaries and flags are Error(unsupported).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace slm::grammar {

struct StringDfa {
  static constexpr int32_t kDead = -1;
  static constexpr int32_t kClose = -2;  // a `"` that ends the string (allowed where accepting)

  int32_t n_states = 0;
  int32_t start = 0;
  // n_states * 256 entries: (next_state << 1) | (1 when the byte starts a new character), or
  // kDead / kClose.
  std::vector<int32_t> next;
  std::vector<uint8_t> accepting;
  // The fewest / most further characters that reach an accepting state (max: INT32_MAX when a
  // loop can be taken).
  std::vector<int32_t> min_chars;
  std::vector<int32_t> max_chars;
  uint64_t uid = 0;  // distinct for every automaton built in this process

  int32_t step(int32_t state, uint8_t byte) const { return next[size_t(state) * 256 + byte]; }
};

// The raw JSON string body: unescaped characters from U+0020 up, escapes \" \\ \/ \b \f \n \r \t
// and \uHHHH (no lone surrogates), valid UTF-8. One escape counts as one character.
std::shared_ptr<const StringDfa> json_string_dfa();

// A string body matching `pattern`. json_safe: the automaton reads raw JSON string bytes, so
// characters that would need escaping (`"`, `\`, controls below U+0020) are left out of every class
// and `"` becomes kClose; otherwise it reads decoded text (for validation). Throws
// Error(unsupported) naming the construct, Error(out_of_range) past the size limits.
std::shared_ptr<const StringDfa> compile_pattern(std::string_view pattern, bool json_safe);

// The regular expression slm uses for a `format` value ("date", "time", "date-time", "email",
// "uuid"), or an empty string when the format is not supported.
std::string format_regex(std::string_view format);

// Whether the whole of `text` is accepted (validation; `dfa` built with json_safe = false).
bool dfa_matches(const StringDfa& dfa, std::string_view text);

}  // namespace slm::grammar
