// GPT-2's reversible byte-to-Unicode mapping: byte-level BPE vocabularies store every byte as a
// printable character (printable Latin-1 bytes as themselves, the other 68 bytes as U+0100..U+0143
// in byte order), so a space is stored as "Ġ" (U+0120) and a newline as "Ċ" (U+010A).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace slm::byte_level {

// The code point that stands for `byte`.
uint32_t code_point_of(uint8_t byte);
// The UTF-8 text that stands for `byte` (one or two bytes long).
std::string_view text_of(uint8_t byte);
// The byte a code point stands for, or -1 when it stands for none.
int byte_of(uint32_t code_point);

// Maps raw bytes to their stored form.
std::string encode(std::string_view bytes);
void encode_append(std::string& out, std::string_view bytes);
// Maps stored text back to raw bytes; returns false (leaving `out` partly written) when `text` has a
// character that stands for no byte or is not valid UTF-8.
bool decode_append(std::string& out, std::string_view text);

}  // namespace slm::byte_level
