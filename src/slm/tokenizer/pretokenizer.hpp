// Pre-tokenization for byte-level BPE: the text between added tokens is split into pieces by a
// sequence of regexes (PCRE2, UTF + UCP, JIT when available), and BPE merges never cross pieces.
// The table maps the tokenizer.ggml.pre names llama.cpp writes to the regexes the models'
// tokenizer.json files declare.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace slm {

struct PreTokenizerInfo {
  std::string_view name;        // tokenizer.ggml.pre
  std::string_view pattern;     // regexes, one per line, applied in order
  std::string_view normalizer;  // "" or "NFC", as the models' tokenizer.json files declare
  bool ignore_merges = false;
  bool add_prefix_space = false;
  bool add_bos = false;         // default when tokenizer.ggml.add_bos_token is absent
};

std::span<const PreTokenizerInfo> known_pre_tokenizers();
const PreTokenizerInfo* find_pre_tokenizer(std::string_view name);
// The first table entry whose pattern is exactly `pattern`, or nullptr.
const PreTokenizerInfo* find_pre_tokenizer_by_pattern(std::string_view pattern);

// The regex of GPT-2's ByteLevel pre-tokenizer (tokenizer.json ByteLevel with use_regex true).
std::string_view gpt2_pattern();

class PreTokenizer {
 public:
  // `pattern`: regexes, one per line (empty lines are ignored). Throws Error(invalid_argument)
  // naming the regex and the position when one does not compile.
  PreTokenizer(std::string_view pattern, bool add_prefix_space);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // Splits `text` into non-empty pieces that point into `text` or into `scratch` (which must
  // outlive them). Invalid UTF-8 is allowed: bytes no regex can match become pieces of their own.
  void split(std::string_view text, std::vector<std::string_view>& pieces, std::string& scratch) const;

 private:
  struct Regex;
  std::vector<std::unique_ptr<Regex>> regexes_;
  bool add_prefix_space_ = false;
};

}  // namespace slm
