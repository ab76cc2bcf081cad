// UTF-8 helpers the tokenizer needs: sequence classification (for streaming and lossy display),
// lossy conversion with U+FFFD, and NFC normalization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace slm::utf8 {

enum class SeqKind { valid, invalid, incomplete };

struct Seq {
  SeqKind kind;
  size_t length;  // valid: bytes of the character; invalid: bytes of the maximal subpart (>= 1);
                  // incomplete: all remaining bytes (a proper prefix of a valid character)
};

// Classifies the bytes at the start of `bytes` (which must not be empty).
Seq classify(std::string_view bytes);

// Length in bytes of the character starting with `lead` if it is a valid lead byte, else 1.
size_t sequence_length(uint8_t lead);

// Code point of the valid character at the start of `bytes`; `length` receives its byte count.
// Returns -1 (and length 1) for an invalid or incomplete sequence.
int32_t decode(std::string_view bytes, size_t& length);

void append(std::string& out, uint32_t code_point);

bool is_valid(std::string_view bytes);

// Replaces each maximal invalid subpart with U+FFFD, as Unicode recommends (and as Rust's
// String::from_utf8_lossy and Python's errors="replace" do).
std::string to_valid(std::string_view bytes);

// Appends the longest prefix of `bytes` that can be decided now to `out` (invalid subparts as
// U+FFFD) and returns how many bytes were consumed; an incomplete trailing character is not consumed.
size_t append_complete(std::string& out, std::string_view bytes);

// Unicode Normalization Form C. Invalid bytes pass through unchanged; the valid runs between them
// are normalized separately.
std::string nfc(std::string_view bytes);

bool is_ascii(std::string_view bytes);

}  // namespace slm::utf8
