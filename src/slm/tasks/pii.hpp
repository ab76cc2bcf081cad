// Personal data in text: rule detectors (patterns plus checksums), overlap resolution and the
// operators that replace what was found. Offsets are in code points of the input (not bytes), so
// they index the text the way Python's str and most JSON consumers do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slm::tasks {

struct Entity {
  std::string type;    // EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, IP_ADDRESS, URL, DATE_TIME, PERSON, ...
  int64_t start = 0;   // code points, inclusive
  int64_t end = 0;     // code points, exclusive
  double score = 0.0;  // 0..1: how sure the detector is
  std::string source;  // which detector: "email", "phone", "luhn", "iban_mod97", "model", ...
};

// Every type the rule detectors know, in a fixed order.
const std::vector<std::string>& rule_entity_types();

// Checksums, on digits/characters with separators (spaces, '-') already removed.
bool luhn_valid(std::string_view digits);  // 13..19 digits
bool iban_valid(std::string_view iban);    // 2 letters, 2 check digits, up to 30 alphanumerics; mod-97 == 1
bool us_ssn_valid(std::string_view digits);  // 9 digits: area not 000/666/9xx, group not 00, serial not 0000

// Findings of the rule detectors for the requested types (empty: all), overlapping ones included,
// sorted by start. Throws Error(invalid_argument) for an unknown type or text that is not UTF-8.
std::vector<Entity> detect_rules(std::string_view text, const std::vector<std::string>& types = {});

// Keeps a set of non-overlapping findings: higher score first, then the longer span, then the
// earlier one. The result is sorted by start.
std::vector<Entity> resolve_overlaps(std::vector<Entity> entities);

enum class RedactOperator { replace, mask, hash, redact };
RedactOperator parse_operator(std::string_view name);  // "replace", "mask", "hash", "redact"

// The text with every entity (non-overlapping, offsets in code points) replaced:
// replace: "<TYPE>"; mask: one '*' per code point; hash: the first 16 hex digits of
// SHA-256(salt + span text); redact: nothing.
std::string apply_operator(std::string_view text, const std::vector<Entity>& entities, RedactOperator op,
                           std::string_view salt = {});

// UTF-8 helpers shared by the tasks.
// Byte offset -> code point index for every byte offset 0..text.size() (continuation bytes map to
// the code point they belong to). Throws Error(invalid_argument) on invalid UTF-8.
std::vector<int64_t> code_point_index(std::string_view text);
// Byte offset of each code point 0..n (n+1 values, the last is text.size()).
std::vector<size_t> code_point_bytes(std::string_view text);

}  // namespace slm::tasks
