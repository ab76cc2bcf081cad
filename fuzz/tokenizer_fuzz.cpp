// libFuzzer target: encoding arbitrary bytes never fails, decoding gives the bytes back, and the
// stream decoder always emits valid UTF-8; for byte-level BPE, SentencePiece-style BPE (by scores,
// with byte fallback) and Unigram.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/tokenizer/utf8.hpp"

namespace {

slm::TokenizerData make_data(const char* pre, const char* normalizer) {
  slm::TokenizerData data;
  data.pre = pre;
  data.normalizer = normalizer;
  data.ignore_merges = true;
  for (int b = 0; b < 256; ++b) data.tokens.emplace_back(slm::byte_level::text_of(uint8_t(b)));
  data.types.assign(256, slm::TokenType::normal);
  const char* merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "i n", "e r", "1 2", "12 3", "\xC4\x8A \xC4\x8A"};
  for (const char* m : merges) {
    const std::string s = m;
    const size_t space = s.find(' ');
    data.tokens.push_back(s.substr(0, space) + s.substr(space + 1));
    data.types.push_back(slm::TokenType::normal);
    data.merges.push_back(s);
  }
  for (const char* special : {"<|im_start|>", "<|im_end|>", "<|e"}) {
    data.tokens.emplace_back(special);
    data.types.push_back(slm::TokenType::control);
  }
  data.tokens.emplace_back("<think>");
  data.types.push_back(slm::TokenType::user_defined);
  data.eos_id = int32_t(data.tokens.size()) - 3;
  data.add_eos = true;
  return data;
}

// ▁, a few pieces with scores, every byte token; Llama 2's normalizer and decoder.
slm::TokenizerData make_sentencepiece(const char* model) {
  const std::string sp = "\xE2\x96\x81";
  slm::TokenizerData data;
  data.model = model;
  data.tokens = {"<unk>", "<s>", "</s>", sp, "a", "b", "ab", sp + "a", sp + "ab", "\xC3\xA9", "<|im_end|>"};
  data.types.assign(data.tokens.size(), slm::TokenType::normal);
  data.types[0] = slm::TokenType::unknown;
  data.types[1] = data.types[2] = data.types[10] = slm::TokenType::control;
  data.scores = {0, 0, 0, -1, -2, -2, -1, -3, -2, -4, 0};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    data.tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    data.types.push_back(slm::TokenType::byte);
    data.scores.push_back(-10);
  }
  data.unk_id = 0;
  data.bos_id = 1;
  data.eos_id = 2;
  data.add_bos = true;
  data.byte_fallback = true;
  data.normalizer = "prepend\t" + sp + "\nreplace\t \t" + sp;
  data.decoder = "replace\t" + sp + "\t \nbyte_fallback\nfuse\nstrip\t \t1\t0";
  return data;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  static const slm::Tokenizer plain(make_data("llama-bpe", ""));
  static const slm::Tokenizer nfc(make_data("qwen2", "NFC"));
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);

  // Without a normalizer, encoding is lossless whether or not special texts are parsed.
  for (bool parse_special : {true, false}) {
    const auto ids = plain.encode(text, false, parse_special);
    check(plain.decode(ids) == text);
  }
  const auto with_eos = plain.encode(text, true, true);
  check(!with_eos.empty() && with_eos.back() == plain.data().eos_id);

  // SentencePiece-style: lossless except that ▁ in the text decodes as a space.
  static const slm::Tokenizer spm(make_sentencepiece("llama"));
  static const slm::Tokenizer unigram(make_sentencepiece("t5"));
  std::string spaced(text);
  for (size_t at = 0; (at = spaced.find("\xE2\x96\x81", at)) != std::string::npos;) spaced.replace(at, 3, " ");
  for (const slm::Tokenizer* tok : {&spm, &unigram}) {
    const auto sp_ids = tok->encode(text, false, false);
    check(tok->decode(sp_ids) == spaced);
    const auto sp_special = tok->encode(text, true, true);
    check(!sp_special.empty() && sp_special.front() == 1);
    for (int32_t id : sp_special) check(id >= 0 && size_t(id) < tok->vocab_size());
  }

  const auto ids = nfc.encode(text, true, true);
  slm::StreamDecoder stream(nfc, false);
  std::string shown;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    check(slm::utf8::is_valid(piece));
    shown += piece;
  }
  shown += stream.flush();
  check(slm::utf8::is_valid(shown));
  check(shown == slm::utf8::to_valid(nfc.decode(ids)));
  return 0;
}
