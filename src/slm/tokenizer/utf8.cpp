#include "slm/tokenizer/utf8.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "slm/util/error.hpp"

namespace slm::utf8 {

namespace {

bool is_continuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Allowed range of the second byte for a lead byte (the first byte decides it).
bool second_byte_ok(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return is_continuation(b);
  }
}

}  // namespace

size_t sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 1;
}

Seq classify(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  const uint8_t lead = p[0];
  if (lead < 0x80) return {SeqKind::valid, 1};
  const size_t need = sequence_length(lead);
  if (need == 1) return {SeqKind::invalid, 1};  // continuation byte, C0, C1, F5..FF
  size_t i = 1;
  for (; i < need; ++i) {
    if (i >= n) return {SeqKind::incomplete, n};
    const bool ok = i == 1 ? second_byte_ok(lead, p[i]) : is_continuation(p[i]);
    if (!ok) return {SeqKind::invalid, i};
  }
  return {SeqKind::valid, need};
}

int32_t decode(std::string_view bytes, size_t& length) {
  const Seq seq = classify(bytes);
  if (seq.kind != SeqKind::valid) {
    length = 1;
    return -1;
  }
  length = seq.length;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  switch (seq.length) {
    case 1: return p[0];
    case 2: return int32_t(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
    case 3: return int32_t(p[0] & 0x0F) << 12 | int32_t(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    default:
      return int32_t(p[0] & 0x07) << 18 | int32_t(p[1] & 0x3F) << 12 | int32_t(p[2] & 0x3F) << 6 |
             (p[3] & 0x3F);
  }
}

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

bool is_ascii(std::string_view bytes) {
  for (char c : bytes) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

bool is_valid(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (static_cast<unsigned char>(bytes[i]) < 0x80) {
      ++i;
      continue;
    }
    const Seq seq = classify(bytes.substr(i));
    if (seq.kind != SeqKind::valid) return false;
    i += seq.length;
  }
  return true;
}

size_t append_complete(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const Seq seq = classify(bytes.substr(i));
    if (seq.kind == SeqKind::incomplete) break;
    if (seq.kind == SeqKind::valid) {
      out.append(bytes.data() + i, seq.length);
    } else {
      append(out, 0xFFFD);
    }
    i += seq.length;
  }
  return i;
}

std::string to_valid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const size_t used = append_complete(out, bytes);
  if (used < bytes.size()) append(out, 0xFFFD);  // an incomplete character at the very end
  return out;
}

namespace {

void nfc_valid(std::string& out, std::string_view run) {
  if (run.empty()) return;
  if (is_ascii(run)) {
    out.append(run);
    return;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                                          utf8proc_ssize_t(run.size()), &result,
                                          utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
  if (n < 0) {
    fail(ErrorKind::internal, "NFC normalization failed: {}", utf8proc_errmsg(n));
  }
  out.append(reinterpret_cast<const char*>(result), size_t(n));
}

}  // namespace

std::string nfc(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 8);
  size_t run_start = 0;
  size_t i = 0;
  while (i < bytes.size()) {
    if (static_cast<unsigned char>(bytes[i]) < 0x80) {
      ++i;
      continue;
    }
    const Seq seq = classify(bytes.substr(i));
    if (seq.kind == SeqKind::valid) {
      i += seq.length;
      continue;
    }
    nfc_valid(out, bytes.substr(run_start, i - run_start));
    out.append(bytes.data() + i, seq.length);
    i += seq.length;
    run_start = i;
  }
  nfc_valid(out, bytes.substr(run_start));
  return out;
}

}  // namespace slm::utf8
