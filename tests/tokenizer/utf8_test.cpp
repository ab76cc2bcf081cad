// Byte-level mapping, UTF-8 helpers and StreamDecoder.
#include <gtest/gtest.h>

#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(ByteLevel, EveryByteRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  const std::string encoded = byte_level::encode(all);
  std::string decoded;
  ASSERT_TRUE(byte_level::decode_append(decoded, encoded));
  EXPECT_EQ(decoded, all);
  // Every byte has its own character, and each is printable (no controls, no spaces).
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = byte_level::code_point_of(uint8_t(b));
    EXPECT_EQ(byte_level::byte_of(cp), b);
    EXPECT_FALSE(cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) << "byte " << b << " maps to U+" << cp;
  }
}

TEST(ByteLevel, KnownCharacters) {
  EXPECT_EQ(byte_level::text_of(' '), "\xC4\xA0");    // Ġ U+0120
  EXPECT_EQ(byte_level::text_of('\n'), "\xC4\x8A");   // Ċ U+010A
  EXPECT_EQ(byte_level::text_of('\t'), "\xC4\x89");   // ĉ U+0109
  EXPECT_EQ(byte_level::text_of('A'), "A");
  EXPECT_EQ(byte_level::text_of(0xE9), "\xC3\xA9");   // é stands for itself
  EXPECT_EQ(byte_level::code_point_of(0x00), 0x100u);
  EXPECT_EQ(byte_level::code_point_of(0x7F), 0x121u);
  EXPECT_EQ(byte_level::code_point_of(0xAD), 0x143u);  // the last unprintable byte
  EXPECT_EQ(byte_level::encode("hi there\n"), "hi\xC4\xA0there\xC4\x8A");
}

TEST(ByteLevel, RejectsCharactersThatStandForNoByte) {
  std::string out;
  EXPECT_FALSE(byte_level::decode_append(out, "\xE4\xB8\xAD"));  // 中
  out.clear();
  EXPECT_FALSE(byte_level::decode_append(out, "a\xC4"));  // truncated UTF-8
  out.clear();
  EXPECT_FALSE(byte_level::decode_append(out, " "));  // a real space is not a stored character
}

TEST(Utf8, ClassifiesSequences) {
  using utf8::SeqKind;
  EXPECT_EQ(utf8::classify("a").kind, SeqKind::valid);
  EXPECT_EQ(utf8::classify("\xC3\xA9").length, 2u);
  EXPECT_EQ(utf8::classify("\xF0\x9F\x98\x80").length, 4u);
  EXPECT_EQ(utf8::classify("\xF0\x9F\x98").kind, SeqKind::incomplete);
  EXPECT_EQ(utf8::classify("\xE2").kind, SeqKind::incomplete);
  EXPECT_EQ(utf8::classify("\x80").kind, SeqKind::invalid);
  EXPECT_EQ(utf8::classify("\xC0\xAF").kind, SeqKind::invalid);         // overlong
  EXPECT_EQ(utf8::classify("\xED\xA0\x80").kind, SeqKind::invalid);     // surrogate
  EXPECT_EQ(utf8::classify("\xF4\x90\x80\x80").kind, SeqKind::invalid); // above U+10FFFF
  EXPECT_EQ(utf8::classify("\xE2\x82" "A").length, 2u);                 // maximal subpart
}

TEST(Utf8, ReplacesMaximalSubparts) {
  EXPECT_EQ(utf8::to_valid("ok"), "ok");
  EXPECT_EQ(utf8::to_valid("\xC3"), kFffd);
  EXPECT_EQ(utf8::to_valid("\xE2\x82"), kFffd);
  EXPECT_EQ(utf8::to_valid("\xF0\x9F\x98" "A"), kFffd + "A");
  EXPECT_EQ(utf8::to_valid("\xC0\xAF"), kFffd + kFffd);
  EXPECT_EQ(utf8::to_valid("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(utf8::to_valid("a\xFF" "b\xFE"), "a" + kFffd + "b" + kFffd);
  EXPECT_TRUE(utf8::is_valid("\xE4\xB8\xAD\xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8::is_valid("\xE4\xB8"));
}

TEST(Utf8, NormalizesToNfcAndKeepsInvalidBytes) {
  EXPECT_EQ(utf8::nfc("e\xCC\x81"), "\xC3\xA9");                       // e + U+0301 -> é
  EXPECT_EQ(utf8::nfc("\xE2\x84\xAB"), "\xC3\x85");                    // Angstrom sign -> Å
  EXPECT_EQ(utf8::nfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");    // conjoining jamo -> 가
  EXPECT_EQ(utf8::nfc("e\xCC\x81\xFF" "e\xCC\x81"), "\xC3\xA9\xFF\xC3\xA9");
  EXPECT_EQ(utf8::nfc("plain"), "plain");
}

// A byte-level vocabulary of the 256 byte tokens plus two control tokens.
Tokenizer byte_tokenizer() {
  TokenizerData data;
  for (int b = 0; b < 256; ++b) {
    data.tokens.emplace_back(byte_level::text_of(uint8_t(b)));
    data.types.push_back(TokenType::normal);
  }
  data.tokens.push_back("<|end|>");
  data.types.push_back(TokenType::control);
  data.tokens.push_back("<tool>");
  data.types.push_back(TokenType::user_defined);
  data.eos_id = 256;
  return Tokenizer(std::move(data));
}

std::vector<int32_t> byte_ids(std::string_view bytes) {
  std::vector<int32_t> ids;
  for (char c : bytes) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

TEST(StreamDecoder, HoldsBackSplitCharacters) {
  const Tokenizer tok = byte_tokenizer();
  StreamDecoder stream(tok);
  const std::string text = "a\xC3\xA9\xF0\x9F\x98\x80z";  // a é 😀 z, one byte per token
  std::vector<std::string> outputs;
  for (int32_t id : byte_ids(text)) outputs.push_back(stream.push(id));
  const std::vector<std::string> expected = {"a", "", "\xC3\xA9", "", "", "", "\xF0\x9F\x98\x80", "z"};
  EXPECT_EQ(outputs, expected);
  EXPECT_EQ(stream.flush(), "");
}

TEST(StreamDecoder, ReplacesBytesThatCannotComplete) {
  const Tokenizer tok = byte_tokenizer();
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(0xFF), kFffd);  // never valid
  EXPECT_EQ(stream.push(0xE2), "");     // may still complete
  EXPECT_EQ(stream.push('A'), kFffd + "A");
  EXPECT_EQ(stream.push(0xF0), "");
  EXPECT_EQ(stream.push(0x9F), "");
  EXPECT_EQ(stream.flush(), kFffd);     // the stream ended mid-character
  EXPECT_EQ(stream.push('b'), "b");
}

TEST(StreamDecoder, SkipsControlTokensWhenAsked) {
  const Tokenizer tok = byte_tokenizer();
  StreamDecoder skipping(tok, true);
  EXPECT_EQ(skipping.push('x'), "x");
  EXPECT_EQ(skipping.push(256), "");
  EXPECT_EQ(skipping.push(257), "<tool>");  // user-defined tokens are text
  StreamDecoder keeping(tok, false);
  EXPECT_EQ(keeping.push(256), "<|end|>");
  EXPECT_THROW(keeping.push(9999), Error);
  EXPECT_THROW(skipping.push(-1), Error);
}

TEST(Decode, ConcatenatesBytesAndSkipsControl) {
  const Tokenizer tok = byte_tokenizer();
  std::vector<int32_t> ids = byte_ids("hi\xE4\xB8");
  ids.push_back(256);
  EXPECT_EQ(tok.decode(ids), "hi\xE4\xB8<|end|>");
  EXPECT_EQ(tok.decode(ids, true), "hi\xE4\xB8");
  EXPECT_EQ(tok.token_bytes(' '), " ");
  EXPECT_TRUE(tok.is_control(256));
  EXPECT_FALSE(tok.is_control(257));
  EXPECT_TRUE(tok.is_eog(256));
  EXPECT_FALSE(tok.is_eog(257));
  const std::vector<int32_t> bad = {5, 300};
  try {
    tok.decode(bad);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
  }
}

}  // namespace
}  // namespace slm
