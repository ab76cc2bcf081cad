#include "slm/tokenizer/byte_level.hpp"

#include <array>

#include "slm/tokenizer/utf8.hpp"

namespace slm::byte_level {

namespace {

struct Tables {
  std::array<uint32_t, 256> code_point{};
  std::array<std::string, 256> text;
  std::array<int16_t, 512> byte{};  // indexed by code point; every mapped code point is below 0x144

  Tables() {
    byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      code_point[b] = printable ? uint32_t(b) : next++;
      utf8::append(text[b], code_point[b]);
      byte[code_point[b]] = int16_t(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t code_point_of(uint8_t b) { return tables().code_point[b]; }

std::string_view text_of(uint8_t b) { return tables().text[b]; }

int byte_of(uint32_t cp) { return cp < 512 ? tables().byte[cp] : -1; }

void encode_append(std::string& out, std::string_view bytes) {
  const Tables& t = tables();
  for (char c : bytes) out.append(t.text[static_cast<uint8_t>(c)]);
}

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  encode_append(out, bytes);
  return out;
}

bool decode_append(std::string& out, std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    size_t length = 0;
    const int32_t cp = utf8::decode(text.substr(i), length);
    if (cp < 0) return false;
    const int b = byte_of(uint32_t(cp));
    if (b < 0) return false;
    out.push_back(char(b));
    i += length;
  }
  return true;
}

}  // namespace slm::byte_level
