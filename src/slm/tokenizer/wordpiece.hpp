// WordPiece, the tokenizer of BERT-family encoders (bert-base-uncased/cased, all-MiniLM-L6-v2,
// bge-small-en-v1.5, nomic-embed-text), as Hugging Face tokenizers runs it:
//
//   added tokens   exact matches of the added tokens ([CLS], [MASK], ...) in the raw text become
//                  their ids; the text between them goes through the steps below
//   normalizer     BertNormalizer: clean text (drop NUL, U+FFFD and characters of category C*,
//                  white space becomes ' '), spaces around CJK ideographs, strip accents (NFD,
//                  then drop Mn marks), per-character lowercase; strip_accents follows lowercase
//                  when unset
//   pre-tokenizer  BertPreTokenizer: split at white space (dropped) and around each punctuation
//                  character (ASCII punctuation and Unicode P*), which becomes a word of its own
//   model          WordPiece: greedy longest match from the start of each word, pieces after the
//                  first prefixed with "##"; a word longer than max_input_chars_per_word
//                  characters, or with a position no piece matches, becomes the unknown token
//   post-process   [CLS] ... [SEP] (TemplateProcessing or BertProcessing); truncation keeps the
//                  first tokens so that the whole, special tokens included, fits max_length
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace slm::gguf {
class File;
}

namespace slm {

struct WordPieceData {
  std::vector<std::string> tokens;        // id -> piece, continuations with the prefix ("##ing")
  std::string continuing_prefix = "##";
  std::string unk_token = "[UNK]";
  int64_t max_input_chars_per_word = 100;
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool strip_accents = true;
  bool lowercase = true;
  std::vector<int32_t> prefix_ids;        // put before the text's tokens ([CLS])
  std::vector<int32_t> suffix_ids;        // put after them ([SEP])
  std::vector<int32_t> added_ids;         // tokens matched verbatim in the raw text
  int32_t pad_id = -1;
};

class WordPieceTokenizer {
 public:
  explicit WordPieceTokenizer(WordPieceData data);

  // `path`: tokenizer.json or a folder holding one. Throws Error(unsupported) when its model is not
  // WordPiece or a step is one this tokenizer does not implement, Error(format) for a malformed file.
  static WordPieceTokenizer from_tokenizer_json(const std::string& path);
  // Whether `path` (a tokenizer.json or a folder with one) declares a WordPiece model.
  static bool is_wordpiece_json(const std::string& path);
  // A GGUF file with tokenizer.ggml.model "bert", as llama.cpp's converter writes it: word-initial
  // pieces carry a "▁" prefix, continuations none, control tokens stay as they are; the normalizer
  // is the uncased one (llama.cpp lowercases and strips accents).
  static WordPieceTokenizer from_gguf(const gguf::File& file);

  // Token ids of `text`; add_special: the prefix and suffix ids. max_length > 0: at most this many
  // ids in all (the text's tokens are cut at the end; the special tokens stay).
  std::vector<int32_t> encode(std::string_view text, bool add_special = true, size_t max_length = 0) const;
  // The normalizer alone (for tests and tools).
  std::string normalize(std::string_view text) const;
  // Words of normalized text, as the pre-tokenizer splits it.
  std::vector<std::string> pre_tokenize(std::string_view normalized) const;

  size_t vocab_size() const { return data_.tokens.size(); }
  const std::string& token(int32_t id) const;  // Error(out_of_range) for an id outside the vocabulary
  int32_t token_id(std::string_view piece) const;  // -1 when absent
  int32_t unk_id() const { return unk_id_; }
  const WordPieceData& data() const { return data_; }

 private:
  void word_pieces(std::string_view word, std::vector<int32_t>& out) const;
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;

  WordPieceData data_;
  std::unordered_map<std::string, int32_t> vocab_;
  int32_t unk_id_ = -1;
};

}  // namespace slm
