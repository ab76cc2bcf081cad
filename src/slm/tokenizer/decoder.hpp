// Decoders: how token texts become bytes, described by a step list that TokenizerData keeps as text
// (TokenizerData::decoder; one step per line, fields separated by tabs), applied to each token:
//   byte_level                   GPT-2's byte-to-Unicode mapping is undone
//   byte_fallback                a token spelled <0xXX> stands for that byte
//   replace<TAB>FROM<TAB>TO      every FROM becomes TO
//   metaspace<TAB>R<TAB>SCHEME   R becomes a space; unless SCHEME is "never", the first token
//                                loses every R (Hugging Face's Metaspace decoder)
//   strip<TAB>C<TAB>START<TAB>STOP  the decoded text loses up to START leading C (STOP must be 0)
//   fuse                         (tokens are always joined)
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace slm {

class Decoder {
 public:
  Decoder() = default;
  // Throws Error(unsupported) naming an unknown step.
  explicit Decoder(std::string_view spec);

  // The bytes one token's text stands for; `first`: the token starts the decoded text.
  std::string token_bytes(std::string_view text, bool first = false) const;
  // Whether the first token decodes differently (token_bytes with first set).
  bool first_differs() const { return !first_drop_.empty(); }
  // Leading spaces the decoded text loses (one of them per step that strips).
  size_t strip_leading() const { return strip_leading_; }
  bool byte_level() const { return byte_level_; }

 private:
  struct Replace {
    std::string from;
    std::string to;
  };
  std::vector<Replace> replaces_;
  bool byte_fallback_ = false;
  bool byte_level_ = false;
  size_t strip_leading_ = 0;
  std::string first_drop_;  // removed from the first token (metaspace)
};

// The byte a <0xXX> token stands for, or -1.
int byte_token_value(std::string_view text);

}  // namespace slm
