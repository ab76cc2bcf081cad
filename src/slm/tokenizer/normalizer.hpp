// Normalizers and SentencePiece-style splitting, described by short step lists that TokenizerData
// keeps as text (so they travel through GGUF metadata unchanged). One step per line, fields
// separated by tabs.
//
// Normalizer steps (TokenizerData::normalizer), applied in order:
//   NFC | NFKC | NFD | NFKD      Unicode normalization forms
//   lowercase                    full lowercase mapping
//   prepend<TAB>TEXT             TEXT before any non-empty text (Hugging Face Prepend)
//   replace<TAB>FROM<TAB>TO      every FROM becomes TO (Hugging Face Replace with a String pattern)
//   squeeze<TAB>C                each run of C becomes one C (Replace of the regex "C{2,}" by C)
//   precompiled<TAB>BASE64       SentencePiece's precompiled character map (a double-array trie
//                                of byte strings and their replacements), longest match first;
//                                text it does not map passes through, invalid bytes become U+FFFD
//   sentencepiece_spaces<TAB>P<TAB>M  spaces become ▁ as SentencePiece (and llama.cpp) do: with M
//                                set, runs of spaces collapse, leading and trailing ones go, and
//                                each word gets one ▁; with P set, ▁ goes before the first word
//
// Split steps (TokenizerData::pre_split), applied in order to the normalized text between added
// tokens:
//   metaspace<TAB>R<TAB>SCHEME<TAB>split|whole
//       spaces become R; then R is put before the text unless it starts with R already, where
//       SCHEME is "always", or "first" and the text starts the input ("never": not at all); with
//       "split", a new piece starts before each R (Hugging Face Metaspace)
//   after<TAB>TEXT               a new piece starts after each TEXT (Split, MergedWithPrevious)
//   before<TAB>TEXT              a new piece starts before each TEXT (Split, MergedWithNext)
//   isolate<TAB>TEXT             each TEXT is a piece of its own (Split, Isolated)
//   whitespace                   pieces end at white space, which is dropped (WhitespaceSplit)
// At most one metaspace step; it applies to each piece the steps before it made.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace slm {

class Normalizer {
 public:
  Normalizer() = default;
  // Throws Error(unsupported) naming an unknown step, Error(format) for a malformed one.
  explicit Normalizer(std::string_view spec);

  bool empty() const { return steps_.empty(); }
  // Normalizes `text`; the result points into `text` or into `buffer`. Invalid UTF-8 passes
  // through unchanged (the valid runs around it are normalized separately).
  std::string_view apply(std::string_view text, std::string& buffer) const;
  std::string apply(std::string_view text) const;

  // Whether the steps put `text` before every non-empty input (a "prepend" step), for GGUF's
  // tokenizer.ggml.add_space_prefix.
  bool prepends(std::string_view text) const;

 private:
  enum class Kind { nfc, nfkc, nfd, nfkd, lowercase, prepend, replace, squeeze, precompiled, sentencepiece_spaces };
  struct Step {
    Kind kind;
    std::string a;
    std::string b;
  };
  std::vector<Step> steps_;
};

// Base64 (RFC 4648, with padding) for binary data kept in text specs.
std::string base64_encode(std::string_view bytes);
// Throws Error(format) on a character outside the alphabet or a bad length.
std::string base64_decode(std::string_view text);

class PieceSplitter {
 public:
  PieceSplitter() = default;
  explicit PieceSplitter(std::string_view spec);

  bool empty() const { return steps_.empty(); }
  // Splits `text` into non-empty pieces that point into `text` or into `scratch` (which must
  // outlive them). `at_start`: the text begins the input (Metaspace's "first" scheme).
  void split(std::string_view text, bool at_start, std::vector<std::string_view>& pieces, std::string& scratch) const;

 private:
  enum class Kind { metaspace, after, before, isolate, whitespace };
  struct Step {
    Kind kind;
    std::string text;
    int scheme = 0;  // metaspace: 0 never, 1 first, 2 always
    bool split = true;
  };
  std::vector<Step> steps_;
};

// Spec lines.
std::vector<std::vector<std::string>> parse_spec_lines(std::string_view spec);
std::string spec_line(std::initializer_list<std::string_view> fields);

}  // namespace slm
