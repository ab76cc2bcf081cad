// WordPiece against Hugging Face tokenizers: ids for hard strings (accents, CJK, control and
// zero-width characters, long words, added tokens) from tokenizer.json files trained by
// tools/ref/make_encoder_fixtures.py, uncased and cased; the GGUF form llama.cpp writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "slm/format/gguf.hpp"
#include "slm/tokenizer/wordpiece.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kData = SLM_TEST_DATA;

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

void expect_parity(const WordPieceTokenizer& tok, const json& ref) {
  ASSERT_GT(ref.size(), 25u);
  size_t unk_words = 0;
  for (const json& e : ref) {
    const std::string text = e["text"].get<std::string>();
    EXPECT_EQ(tok.normalize(text), e["normalized"].get<std::string>()) << text;
    EXPECT_EQ(tok.encode(text, true), e["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok.encode(text, false), e["ids_no_special"].get<std::vector<int32_t>>()) << text;
    for (int32_t id : e["ids"].get<std::vector<int32_t>>()) unk_words += id == tok.unk_id();
  }
  EXPECT_GT(unk_words, 3u);  // the corpus reaches the unknown-word paths
}

TEST(WordPiece, UncasedMatchesHuggingFace) {
  const auto tok = WordPieceTokenizer::from_tokenizer_json(kData + "/models/bert_tiny");
  EXPECT_TRUE(tok.data().lowercase);
  EXPECT_TRUE(tok.data().strip_accents);
  expect_parity(tok, read_json(kData + "/models/bert_tiny/tokenizer_reference.json"));
}

TEST(WordPiece, CasedMatchesHuggingFace) {
  const auto tok = WordPieceTokenizer::from_tokenizer_json(kData + "/models/bert_tok_cased/tokenizer.json");
  EXPECT_FALSE(tok.data().lowercase);
  EXPECT_FALSE(tok.data().strip_accents);
  EXPECT_EQ(tok.data().max_input_chars_per_word, 16);
  expect_parity(tok, read_json(kData + "/models/bert_tok_cased/reference.json"));
}

TEST(WordPiece, SpecialTokensAndTruncation) {
  const auto tok = WordPieceTokenizer::from_tokenizer_json(kData + "/models/bert_tiny");
  const int32_t cls = tok.token_id("[CLS]"), sep = tok.token_id("[SEP]"), mask = tok.token_id("[MASK]");
  ASSERT_GE(cls, 0);
  ASSERT_GE(sep, 0);
  const auto ids = tok.encode("hello world the quick brown fox", true);
  ASSERT_GT(ids.size(), 6u);
  EXPECT_EQ(ids.front(), cls);
  EXPECT_EQ(ids.back(), sep);
  const auto cut = tok.encode("hello world the quick brown fox", true, 5);
  ASSERT_EQ(cut.size(), 5u);
  EXPECT_EQ(cut.front(), cls);
  EXPECT_EQ(cut.back(), sep);
  EXPECT_TRUE(std::equal(cut.begin() + 1, cut.end() - 1, ids.begin() + 1));
  EXPECT_EQ(tok.encode("a[MASK]b", false).at(1), mask);
  EXPECT_THROW(tok.encode("hello", true, 1), Error);
  // Continuation pieces carry the prefix; an unmatched position makes the whole word unknown.
  const auto pieces = tok.encode("unaffable", false);
  ASSERT_GT(pieces.size(), 1u);
  EXPECT_FALSE(tok.token(pieces[0]).starts_with("##"));
  for (size_t i = 1; i < pieces.size(); ++i) EXPECT_TRUE(tok.token(pieces[i]).starts_with("##"));
  EXPECT_EQ(tok.encode("hello\xF0\x9F\x98\x80", false), std::vector<int32_t>{tok.unk_id()});
  EXPECT_THROW(tok.token(int32_t(tok.vocab_size())), Error);
}

TEST(WordPiece, InvalidUtf8IsReplacedAndDropped) {
  const auto tok = WordPieceTokenizer::from_tokenizer_json(kData + "/models/bert_tiny");
  EXPECT_EQ(tok.normalize("ab\xFF\xFE" "cd"), "abcd");
  EXPECT_EQ(tok.encode("hello \xC3", false), tok.encode("hello", false));
}

TEST(WordPiece, RejectsOtherModels) {
  const fs::path dir = fs::temp_directory_path() / ("slm_wp_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})";
  }
  EXPECT_FALSE(WordPieceTokenizer::is_wordpiece_json(dir.string()));
  try {
    WordPieceTokenizer::from_tokenizer_json(dir.string());
    ADD_FAILURE() << "a BPE tokenizer.json loaded as WordPiece";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
  {
    std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}})";
  }
  EXPECT_TRUE(WordPieceTokenizer::is_wordpiece_json(dir.string()));
  EXPECT_THROW(WordPieceTokenizer::from_tokenizer_json(dir.string()), Error);  // no [UNK] in the vocabulary
  {
    std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}},
      "normalizer": {"type": "NFC"}})";
  }
  EXPECT_THROW(WordPieceTokenizer::from_tokenizer_json(dir.string()), Error);
  fs::remove_all(dir);
}

// Linear time: a megabyte of text full of added tokens and long words encodes quickly.
TEST(WordPiece, LargeInputIsLinear) {
  const auto tok = WordPieceTokenizer::from_tokenizer_json(kData + "/models/bert_tiny");
  std::string text;
  while (text.size() < (1u << 20)) text += "hello [MASK] world, caf\xC3\xA9 " + std::string(150, 'x') + " [SEP]the quick fox ";
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok.encode(text, false);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(ids.size(), 50000u);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.token_id("[MASK]")), std::count(ids.begin(), ids.end(), tok.token_id("[SEP]")));
  EXPECT_LT(s, 10.0) << "1 MB took " << s << " s";
  std::printf("[ speed    ] wordpiece: %.2f MB in %.3f s (%zu tokens)\n", double(text.size()) / 1e6, s, ids.size());
}

// The GGUF layout of llama.cpp's converter: "▁" before word-initial pieces, none on continuations,
// control tokens unchanged.
TEST(WordPiece, GgufFormGivesTheSameIds) {
  const auto tok = WordPieceTokenizer::from_tokenizer_json(kData + "/models/bert_tiny");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (size_t i = 0; i < tok.vocab_size(); ++i) {
    const std::string& t = tok.data().tokens[i];
    const bool control = t.size() > 2 && t.front() == '[' && t.back() == ']';
    types.push_back(control ? 3 : 1);
    tokens.push_back(control ? t : t.starts_with("##") ? t.substr(2) : "\xE2\x96\x81" + t);
  }
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::of_string("bert"));
  w.set("tokenizer.ggml.model", gguf::Value::of_string("bert"));
  w.set("tokenizer.ggml.tokens", gguf::Value::of_strings(tokens));
  w.set("tokenizer.ggml.token_type", gguf::Value::of_i32s(types));
  w.set("tokenizer.ggml.unknown_token_id", gguf::Value::of_u32(uint32_t(tok.unk_id())));
  w.set("tokenizer.ggml.cls_token_id", gguf::Value::of_u32(uint32_t(tok.token_id("[CLS]"))));
  w.set("tokenizer.ggml.seperator_token_id", gguf::Value::of_u32(uint32_t(tok.token_id("[SEP]"))));
  const fs::path path = fs::temp_directory_path() / ("slm_wp_" + std::to_string(::getpid()) + ".gguf");
  w.write(path.string());
  const auto file = gguf::File::open(path.string());
  const auto from_gguf = WordPieceTokenizer::from_gguf(file);
  const json ref = read_json(kData + "/models/bert_tiny/tokenizer_reference.json");
  for (const json& e : ref) {
    const std::string text = e["text"].get<std::string>();
    EXPECT_EQ(from_gguf.encode(text), e["ids"].get<std::vector<int32_t>>()) << text;
  }
  fs::remove(path);
}

}  // namespace
}  // namespace slm
