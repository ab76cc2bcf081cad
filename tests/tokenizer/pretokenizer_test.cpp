// Pre-tokenizer regexes: the table of known names and how each splits text.
#include <gtest/gtest.h>

#include "slm/tokenizer/pretokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

std::vector<std::string> split(std::string_view pre_name, std::string_view text) {
  const PreTokenizerInfo* info = find_pre_tokenizer(pre_name);
  EXPECT_NE(info, nullptr) << pre_name;
  if (info == nullptr) return {};
  const PreTokenizer pre(info->pattern, info->add_prefix_space);
  std::vector<std::string_view> pieces;
  std::string scratch;
  pre.split(text, pieces, scratch);
  return {pieces.begin(), pieces.end()};
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, TableHasTheSupportedNames) {
  for (const char* name : {"gpt-2", "default", "llama-bpe", "qwen2", "deepseek-r1-qwen", "smollm"}) {
    const PreTokenizerInfo* info = find_pre_tokenizer(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_NO_THROW(PreTokenizer(info->pattern, info->add_prefix_space)) << name;
  }
  EXPECT_EQ(find_pre_tokenizer("no-such"), nullptr);
  EXPECT_EQ(find_pre_tokenizer("llama-bpe")->ignore_merges, true);
  EXPECT_EQ(find_pre_tokenizer("qwen2")->normalizer, "NFC");
  EXPECT_EQ(find_pre_tokenizer_by_pattern(find_pre_tokenizer("deepseek-r1-qwen")->pattern)->name, "qwen2");
  EXPECT_EQ(find_pre_tokenizer_by_pattern(gpt2_pattern())->name, "gpt-2");
  EXPECT_EQ(find_pre_tokenizer_by_pattern("x+"), nullptr);
}

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split("gpt-2", "Hello world's 123 ok!!"),
            (Pieces{"Hello", " world", "'s", " 123", " ok", "!!"}));
  // Before a letter, the last space of a run goes with the word; the newline run splits likewise.
  EXPECT_EQ(split("gpt-2", "a   b\n\nc"), (Pieces{"a", "  ", " b", "\n", "\n", "c"}));
  EXPECT_EQ(split("gpt-2", "x  "), (Pieces{"x", "  "}));
  EXPECT_EQ(split("gpt-2", "IT'S"), (Pieces{"IT", "'", "S"}));  // GPT-2's contractions are lower case only
}

TEST(PreTokenizer, Llama3) {
  EXPECT_EQ(split("llama-bpe", "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(split("llama-bpe", "IT'S don'T"), (Pieces{"IT", "'S", " don", "'T"}));
  EXPECT_EQ(split("llama-bpe", "a \n\n b"), (Pieces{"a", " \n\n", " b"}));
  EXPECT_EQ(split("llama-bpe", "x.\n\ny"), (Pieces{"x", ".\n\n", "y"}));
  EXPECT_EQ(split("llama-bpe", "(hello"), (Pieces{"(hello"}));
}

TEST(PreTokenizer, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(split("qwen2", "v12.5"), (Pieces{"v", "1", "2", ".", "5"}));
  EXPECT_EQ(split("deepseek-r1-qwen", "v12"), (Pieces{"v", "1", "2"}));
}

TEST(PreTokenizer, SmollmDigitsThenGpt2) {
  EXPECT_EQ(split("smollm", "abc123 x"), (Pieces{"abc", "1", "2", "3", " x"}));
}

TEST(PreTokenizer, WhitespaceIsUnicodeWhiteSpace) {
  // U+0085 (NEL) is white space; U+180E (Mongolian vowel separator) no longer is, so it joins the
  // punctuation after it, as in Hugging Face tokenizers (Oniguruma).
  EXPECT_EQ(split("gpt-2", "\xC2\x85!"), (Pieces{"\xC2\x85", "!"}));
  EXPECT_EQ(split("gpt-2", "\xE1\xA0\x8E!"), (Pieces{"\xE1\xA0\x8E!"}));
  EXPECT_EQ(split("gpt-2", "a\xE3\x80\x80" "b"), (Pieces{"a", "\xE3\x80\x80", "b"}));  // ideographic space
}

TEST(PreTokenizer, InvalidBytesBecomePieces) {
  EXPECT_EQ(split("gpt-2", "ab\xFF" "cd"), (Pieces{"ab", "\xFF", "cd"}));
  EXPECT_EQ(split("qwen2", "\xE4\xB8" "x"), (Pieces{"\xE4\xB8", "x"}));
}

TEST(PreTokenizer, AddPrefixSpace) {
  const PreTokenizer pre(gpt2_pattern(), true);
  std::vector<std::string_view> pieces;
  std::string scratch;
  pre.split("hi there", pieces, scratch);
  EXPECT_EQ(Pieces(pieces.begin(), pieces.end()), (Pieces{" hi", " there"}));
  pre.split(" hi", pieces, scratch);
  EXPECT_EQ(Pieces(pieces.begin(), pieces.end()), (Pieces{" hi"}));
}

TEST(PreTokenizer, LongRunsDoNotFail) {
  const std::string spaces(200000, ' ');
  const auto pieces = split("llama-bpe", spaces + "x");
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].size(), spaces.size() - 1);  // the last space joins the word: " x"
  EXPECT_EQ(pieces[1], " x");
  EXPECT_EQ(split("qwen2", std::string(100000, '\n')).size(), 1u);
  EXPECT_EQ(split("llama-bpe", std::string(30000, '7')).size(), 10000u);
}

TEST(PreTokenizer, BadRegexIsAnError) {
  try {
    PreTokenizer pre("(unclosed", false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos);
  }
}

}  // namespace
}  // namespace slm
