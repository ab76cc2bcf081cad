// libFuzzer target: encoding arbitrary bytes never fails, decoding gives the bytes back, and the
// stream decoder always emits valid UTF-8.
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
