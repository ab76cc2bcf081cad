// Byte-level BPE on small handmade vocabularies: merge order, ignore_merges, added tokens,
// BOS/EOS, normalization, and the errors the constructor raises.
#include <gtest/gtest.h>

#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

// 256 byte tokens (id = byte), then `extra` tokens in order, merges as given.
TokenizerData make_data(const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
  TokenizerData data;
  data.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) data.tokens.emplace_back(byte_level::text_of(uint8_t(b)));
  for (const auto& t : extra) data.tokens.push_back(t);
  data.types.assign(data.tokens.size(), TokenType::normal);
  data.merges = merges;
  return data;
}

// "Ġ" is the stored form of a space.
const std::vector<std::string> kWords = {"he", "ll", "hell", "hello", "\xC4\xA0w", "or", "ld", "\xC4\xA0wor",
                                         "\xC4\xA0world"};
const std::vector<std::string> kWordMerges = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "o r", "l d",
                                              "\xC4\xA0w or", "\xC4\xA0wor ld"};

TEST(Bpe, MergesWordsByRank) {
  const Tokenizer tok(make_data(kWords, kWordMerges));
  const int32_t hello = tok.token_id("hello");
  const int32_t world = tok.token_id("\xC4\xA0world");
  ASSERT_GE(hello, 256);
  ASSERT_GE(world, 256);
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{hello, world}));
  // Merges never cross pre-tokens: "hello" and " world" are separate pieces, "lo" has no merge.
  EXPECT_EQ(tok.encode("helo"), (std::vector<int32_t>{tok.token_id("he"), 'l', 'o'}));
  EXPECT_EQ(tok.decode(tok.encode("hello world, hello")), "hello world, hello");
}

TEST(Bpe, LowestRankWinsOverPosition) {
  // "abc": the pair (b, c) has the lower rank, so it merges first although (a, b) is leftmost, and
  // no merge joins "a" with "bc".
  const Tokenizer tok(make_data({"ab", "bc"}, {"b c", "a b"}));
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{'a', tok.token_id("bc")}));
  EXPECT_EQ(tok.encode("abd"), (std::vector<int32_t>{tok.token_id("ab"), 'd'}));
}

TEST(Bpe, EqualPairsMergeLeftmostFirst) {
  const Tokenizer tok(make_data({"aa", "aaaa"}, {"a a", "aa aa"}));
  const int32_t aa = tok.token_id("aa");
  const int32_t aaaa = tok.token_id("aaaa");
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{aa, 'a'}));
  EXPECT_EQ(tok.encode("aaaaa"), (std::vector<int32_t>{aaaa, 'a'}));
  EXPECT_EQ(tok.encode("aaaaaaa"), (std::vector<int32_t>{aaaa, aa, 'a'}));
}

TEST(Bpe, LongWordsStayCorrect) {
  const Tokenizer tok(make_data({"aa", "aaaa"}, {"a a", "aa aa"}));
  const std::string word(100001, 'a');
  const auto ids = tok.encode(word);
  ASSERT_EQ(ids.size(), 25001u);  // 25000 x "aaaa" and one "a"
  EXPECT_EQ(ids.front(), tok.token_id("aaaa"));
  EXPECT_EQ(ids.back(), 'a');
  EXPECT_EQ(tok.decode(ids), word);
}

TEST(Bpe, IgnoreMergesEmitsWholeTokens) {
  // "xyz" is a token no merge reaches.
  TokenizerData data = make_data({"xy", "xyz"}, {"x y"});
  const int32_t xyz = int32_t(data.tokens.size()) - 1;
  const Tokenizer plain(data);
  EXPECT_EQ(plain.encode("xyz"), (std::vector<int32_t>{plain.token_id("xy"), 'z'}));
  data.ignore_merges = true;
  const Tokenizer whole(data);
  EXPECT_EQ(whole.encode("xyz"), (std::vector<int32_t>{xyz}));
  EXPECT_EQ(whole.encode("xyzx"), (std::vector<int32_t>{whole.token_id("xy"), 'z', 'x'}));
}

TEST(Bpe, EncodesAnyBytes) {
  const Tokenizer tok(make_data({}, {}));
  const std::string bytes = std::string("a\xFF\xFE\x00\x80z", 6) + "\xE4\xB8";
  const auto ids = tok.encode(bytes);
  EXPECT_EQ(tok.decode(ids), bytes);
  EXPECT_EQ(ids.size(), bytes.size());
}

TokenizerData special_data() {
  TokenizerData data = make_data({"<s>", "</s>", "<|end|>", "<|e", "<tool>", "ab"}, {"a b"});
  const auto n = int32_t(data.tokens.size());
  data.types[n - 6] = TokenType::control;       // <s>
  data.types[n - 5] = TokenType::control;       // </s>
  data.types[n - 4] = TokenType::control;       // <|end|>
  data.types[n - 3] = TokenType::control;       // <|e
  data.types[n - 2] = TokenType::user_defined;  // <tool>
  data.bos_id = n - 6;
  data.eos_id = n - 5;
  return data;
}

TEST(AddedTokens, SplitLongestMatchFirst) {
  const Tokenizer tok(special_data());
  const int32_t end = tok.token_id("<|end|>");
  const int32_t e = tok.token_id("<|e");
  const int32_t tool = tok.token_id("<tool>");
  const int32_t ab = tok.token_id("ab");
  EXPECT_EQ(tok.encode("ab<|end|>ab", false), (std::vector<int32_t>{ab, end, ab}));
  EXPECT_EQ(tok.encode("<|ex", false), (std::vector<int32_t>{e, 'x'}));
  EXPECT_EQ(tok.encode("<|end|><|end|>", false), (std::vector<int32_t>{end, end}));
  EXPECT_EQ(tok.encode(" <tool> ", false), (std::vector<int32_t>{' ', tool, ' '}));
  EXPECT_EQ(tok.encode("<|en", false), (std::vector<int32_t>{e, 'n'}));
}

TEST(AddedTokens, ParseSpecialOffLeavesControlTextAsText) {
  const Tokenizer tok(special_data());
  const auto ids = tok.encode("<|end|><tool>", false, false);
  // Control text becomes ordinary byte tokens; user-defined tokens still match.
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), tok.token_id("<tool>"));
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_LT(ids[i], 256);
  EXPECT_EQ(tok.decode(ids), "<|end|><tool>");
}

TEST(AddedTokens, StripOptionsAbsorbWhitespace) {
  TokenizerData data = special_data();
  const int32_t tool = int32_t(data.tokens.size()) - 2;
  data.added_options.push_back({tool, true, true, false});
  const Tokenizer tok(data);
  EXPECT_EQ(tok.encode("a  <tool> \tb", false), (std::vector<int32_t>{'a', tool, 'b'}));
  data.added_options = {{tool, false, false, true}};
  const Tokenizer single(data);
  EXPECT_EQ(single.encode("x<tool>", false).back(), '>');  // touching a word: not matched
  EXPECT_EQ(single.encode("x <tool>", false).back(), tool);
}

TEST(AddedTokens, BosAndEosFollowTheConfiguration) {
  TokenizerData data = special_data();
  const int32_t bos = data.bos_id;
  const int32_t eos = data.eos_id;
  data.add_bos = true;
  const Tokenizer with_bos(data);
  EXPECT_EQ(with_bos.encode("ab"), (std::vector<int32_t>{bos, with_bos.token_id("ab")}));
  EXPECT_EQ(with_bos.encode(""), (std::vector<int32_t>{bos}));
  EXPECT_EQ(with_bos.encode("ab", false), (std::vector<int32_t>{with_bos.token_id("ab")}));
  data.add_eos = true;
  const Tokenizer both(data);
  EXPECT_EQ(both.encode("ab"), (std::vector<int32_t>{bos, both.token_id("ab"), eos}));
  EXPECT_TRUE(both.is_eog(eos));
  EXPECT_EQ(both.decode(both.encode("ab"), true), "ab");
}

TEST(Normalizer, NfcComposesBeforeMerging) {
  TokenizerData data = make_data({"\xC3\xA9"}, {"\xC3\x83 \xC2\xA9"});  // é is bytes C3 A9, stored "Ã©"
  data.tokens.back() = "\xC3\x83\xC2\xA9";
  const Tokenizer raw(data);
  data.normalizer = "NFC";
  const Tokenizer nfc(data);
  const int32_t e_acute = nfc.token_id("\xC3\x83\xC2\xA9");
  EXPECT_EQ(nfc.encode("e\xCC\x81"), (std::vector<int32_t>{e_acute}));
  EXPECT_EQ(raw.encode("e\xCC\x81").size(), 3u);  // e, 0xCC, 0x81
}

TEST(Errors, ConstructorRejectsBadData) {
  auto kind_of = [](const TokenizerData& data) {
    try {
      Tokenizer tok(data);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::internal;  // no error at all
  };
  TokenizerData data = make_data({"ab"}, {"a b"});
  TokenizerData wordpiece = data;
  wordpiece.model = "bert";
  EXPECT_EQ(kind_of(wordpiece), ErrorKind::unsupported);
  TokenizerData spm_with_regex = data;  // SentencePiece models split by steps, not regexes
  spm_with_regex.model = "llama";
  spm_with_regex.pattern = "\\p{L}+";
  EXPECT_EQ(kind_of(spm_with_regex), ErrorKind::unsupported);
  TokenizerData unigram_without_scores = data;
  unigram_without_scores.model = "t5";
  unigram_without_scores.pattern.clear();
  EXPECT_EQ(kind_of(unigram_without_scores), ErrorKind::invalid_argument);
  TokenizerData unknown_merge = data;
  unknown_merge.merges.push_back("a q\xC3\xBF\xC3\xBF");
  EXPECT_EQ(kind_of(unknown_merge), ErrorKind::format);
  TokenizerData merge_without_result = data;
  merge_without_result.merges.push_back("b c");  // "bc" is no token
  EXPECT_EQ(kind_of(merge_without_result), ErrorKind::format);
  TokenizerData bad_merge = data;
  bad_merge.merges.push_back("abc");
  EXPECT_EQ(kind_of(bad_merge), ErrorKind::format);
  TokenizerData types = data;
  types.types.pop_back();
  EXPECT_EQ(kind_of(types), ErrorKind::invalid_argument);
  TokenizerData bad_id = data;
  bad_id.eos_id = 100000;
  EXPECT_EQ(kind_of(bad_id), ErrorKind::invalid_argument);
  TokenizerData unknown_pre = data;
  unknown_pre.pre = "no-such-pre";
  EXPECT_EQ(kind_of(unknown_pre), ErrorKind::unsupported);
  TokenizerData bad_regex = data;
  bad_regex.pattern = "([a-z";
  EXPECT_EQ(kind_of(bad_regex), ErrorKind::invalid_argument);
  TokenizerData bad_normalizer = data;
  bad_normalizer.normalizer = "NFKD";
  EXPECT_EQ(kind_of(bad_normalizer), ErrorKind::unsupported);
  TokenizerData bos_missing = data;
  bos_missing.add_bos = true;
  EXPECT_EQ(kind_of(bos_missing), ErrorKind::invalid_argument);
  EXPECT_EQ(kind_of(data), ErrorKind::internal);
}

}  // namespace
}  // namespace slm
