// Tokenizers: byte-level BPE (GPT-2 / Llama 3 / Qwen / Phi-4-mini style), SentencePiece-style BPE
// with byte fallback (Llama 2, Mistral, Gemma) and SentencePiece Unigram. Loaded from GGUF metadata, from a tokenizer.json (with tokenizer_config.json beside it),
// or from a Hugging Face model folder.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace slm::gguf {
class File;
class Writer;
}  // namespace slm::gguf

namespace slm {

// As GGUF's tokenizer.ggml.token_type numbers them.
enum class TokenType : int32_t {
  undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6,
};

// Everything a tokenizer is made from, whichever file it came from. This is also what
// `slm convert` writes into GGUF metadata (tokenizer.ggml.*).
struct TokenizerData {
  // tokenizer.ggml.model: "gpt2" = byte-level BPE, "llama" = SentencePiece-style BPE (merges, or
  // scores alone), "t5" = SentencePiece Unigram (scores).
  std::string model = "gpt2";
  std::string pre = "default";       // tokenizer.ggml.pre: "llama-bpe", "qwen2", "gpt-2", "smollm", "deepseek-r1-qwen", ...
  // Pre-tokenizer regexes, one per line, applied in order: each splits every piece the previous
  // one produced, matches and the text between them both becoming pieces (Hugging Face's Split with
  // behavior Isolated). Empty: the table entry for `pre` (see pretokenizer.hpp).
  std::string pattern;
  // Applied to the text between added tokens. "gpt2": "" or "NFC"; "llama" and "t5": normalizer
  // steps as normalizer.hpp describes them (e.g. "prepend\t▁\nreplace\t \t▁").
  std::string normalizer;
  std::string pre_split;             // "llama", "t5": split steps (normalizer.hpp), e.g. Metaspace
  std::string decoder;               // "llama", "t5": decoder steps (decoder.hpp)
  std::vector<double> scores;        // "llama" without merges, "t5": one per token; NaN: matched only as an added token
  bool byte_fallback = false;        // "llama", "t5": a character with no token becomes <0xXX> tokens
  bool add_prefix_space = false;     // ByteLevel add_prefix_space: a space before text not starting with one
  bool ignore_merges = false;        // a pre-token that is itself a token is emitted whole (Llama 3)
  std::vector<std::string> tokens;   // token text as stored (byte-level BPE: the byte-to-unicode form)
  std::vector<TokenType> types;      // same length as tokens
  std::vector<std::string> merges;   // "left right", by rank
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t pad_id = -1;
  int32_t unk_id = -1;
  std::vector<int32_t> eog_ids;      // every id that ends generation (eos, <|eot_id|>, <|im_end|>, ...)
  bool add_bos = false;
  bool add_eos = false;
  std::string chat_template;         // tokenizer.chat_template, empty if none

  // How added tokens match (tokenizer.json's lstrip/rstrip/single_word); lists only tokens with an
  // option set. GGUF does not store these.
  struct AddedTokenOptions {
    int32_t id = -1;
    bool lstrip = false;       // absorbs the whitespace before it
    bool rstrip = false;       // absorbs the whitespace after it
    bool single_word = false;  // matches only where no word character touches it
    bool normalized = false;   // "llama", "t5": matched in the normalized text (its own text normalized too)
  };
  std::vector<AddedTokenOptions> added_options;
};

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerData data);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // `path`: a GGUF file, a folder with tokenizer.json, or a bare tokenizer.json.
  static Tokenizer load(const std::string& path);
  // Reads the tokenizer.ggml.* keys llama.cpp writes; normalizer, ignore_merges and add_prefix_space
  // come from the table entry of tokenizer.ggml.pre unless tokenizer.slm.* keys say otherwise.
  // "llama" and "t5" files need tokenizer.ggml.scores; without slm keys their pipeline is llama.cpp's
  // (spaces as ▁, tokenizer.ggml.add_space_prefix, for "t5" the precompiled character map and
  // tokenizer.ggml.remove_extra_whitespaces).
  static TokenizerData data_from_gguf(const gguf::File& file);
  // Reads tokenizer.json and, if present beside it, tokenizer_config.json (add_bos_token,
  // chat_template, eos_token, ...).
  static TokenizerData data_from_tokenizer_json(const std::string& path);
  // Writes the keys llama.cpp reads (tokenizer.ggml.model/pre/tokens/token_type/merges, the special
  // token ids, add_bos_token/add_eos_token, tokenizer.chat_template) and, only where the data differs
  // from the table entry of `pre`, tokenizer.slm.pre_pattern/normalizer/ignore_merges/add_prefix_space.
  // "llama" and "t5": tokens, scores (for BPE given by merges, -rank of the merge that makes each
  // token) and types as llama.cpp's converter writes them, tokenizer.ggml.add_space_prefix, and
  // tokenizer.slm.normalizer/pre_split/decoder/byte_fallback/scores_f64 where llama.cpp's rules
  // would differ. Added-token options go to tokenizer.slm.added_token_flags.
  static void write_gguf(const TokenizerData& data, gguf::Writer& writer);

  // add_special: add BOS/EOS as the tokenizer's configuration says.
  // parse_special: text of special/added tokens becomes their id (else it is tokenized as text).
  std::vector<int32_t> encode(std::string_view text, bool add_special = true, bool parse_special = true) const;
  // Concatenated bytes of the tokens; control tokens are dropped when skip_special. The result may
  // hold invalid UTF-8 (a token can be part of a character); use StreamDecoder for display.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  std::string token_bytes(int32_t id) const;  // the raw bytes a token stands for
  size_t vocab_size() const;
  int32_t token_id(std::string_view token_text) const;  // -1 when no token has this text (stored form)
  bool is_eog(int32_t id) const;
  bool is_control(int32_t id) const;
  const TokenizerData& data() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of token ids into text that is always valid UTF-8: bytes of an incomplete
// character are held back until the character completes.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  std::string push(int32_t id);
  std::string flush();  // what is held back, invalid bytes replaced by U+FFFD

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace slm
