#include "slm/tokenizer/decoder.hpp"

#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/normalizer.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

int byte_token_value(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const int hi = hex_digit(text[3]);
  const int lo = hex_digit(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

Decoder::Decoder(std::string_view spec) {
  for (auto& f : parse_spec_lines(spec)) {
    const std::string& name = f[0];
    if (name == "byte_level" && f.size() == 1) {
      byte_level_ = true;
    } else if (name == "byte_fallback" && f.size() == 1) {
      byte_fallback_ = true;
    } else if (name == "fuse" && f.size() == 1) {
    } else if (name == "replace" && f.size() == 3 && !f[1].empty()) {
      replaces_.push_back({f[1], f[2]});
    } else if (name == "metaspace" && f.size() == 3 && !f[1].empty()) {
      replaces_.push_back({f[1], " "});
      if (f[2] != "never") first_drop_ = f[1];
    } else if (name == "strip" && f.size() == 4) {
      if (f[1] != " " || f[3] != "0") {
        fail(ErrorKind::unsupported, "decoder strip of '{}' with stop {} is not supported (only leading spaces)", f[1], f[3]);
      }
      if (f[2].empty() || f[2].size() > 3 || f[2].find_first_not_of("0123456789") != std::string::npos) {
        fail(ErrorKind::format, "expected a small count of characters to strip, found '{}'", f[2]);
      }
      strip_leading_ += size_t(std::stoi(f[2]));
    } else {
      fail(ErrorKind::unsupported, "decoder step '{}' with {} fields is not supported", name, f.size());
    }
  }
}

std::string Decoder::token_bytes(std::string_view text, bool first) const {
  if (byte_fallback_) {
    const int b = byte_token_value(text);
    if (b >= 0) return std::string(1, char(b));
  }
  std::string s(text);
  if (first && !first_drop_.empty()) {
    for (size_t at = 0; (at = s.find(first_drop_, at)) != std::string::npos;) s.erase(at, first_drop_.size());
  }
  for (const Replace& r : replaces_) {
    std::string out;
    size_t i = 0;
    size_t hit = 0;
    while ((hit = s.find(r.from, i)) != std::string::npos) {
      out.append(s, i, hit - i).append(r.to);
      i = hit + r.from.size();
    }
    out.append(s, i);
    s = std::move(out);
  }
  if (byte_level_) {
    std::string raw;
    if (byte_level::decode_append(raw, s)) return raw;
  }
  return s;
}

}  // namespace slm
