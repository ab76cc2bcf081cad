#include "slm/tokenizer/normalizer.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm {

std::vector<std::vector<std::string>> parse_spec_lines(std::string_view spec) {
  std::vector<std::vector<std::string>> lines;
  size_t begin = 0;
  while (begin < spec.size()) {
    size_t end = spec.find('\n', begin);
    if (end == std::string_view::npos) end = spec.size();
    const std::string_view line = spec.substr(begin, end - begin);
    if (!line.empty()) {
      std::vector<std::string> fields;
      size_t f = 0;
      while (true) {
        const size_t tab = line.find('\t', f);
        fields.emplace_back(line.substr(f, tab == std::string_view::npos ? std::string_view::npos : tab - f));
        if (tab == std::string_view::npos) break;
        f = tab + 1;
      }
      lines.push_back(std::move(fields));
    }
    begin = end + 1;
  }
  return lines;
}

std::string spec_line(std::initializer_list<std::string_view> fields) {
  std::string out;
  for (std::string_view f : fields) {
    if (f.find('\t') != std::string_view::npos || f.find('\n') != std::string_view::npos) {
      fail(ErrorKind::unsupported, "a tokenizer step argument with a tab or a newline is not supported ('{}')", f);
    }
    if (!out.empty()) out.push_back('\t');
    out.append(f);
  }
  return out;
}

namespace {

void expect_fields(const std::vector<std::string>& fields, size_t n) {
  if (fields.size() != n) {
    fail(ErrorKind::format, "expected {} fields in the tokenizer step '{}', found {}", n, fields[0], fields.size());
  }
}

// Appends `run` (valid UTF-8) mapped by utf8proc with `options`.
void map_valid(std::string& out, std::string_view run, utf8proc_option_t options) {
  if (run.empty()) return;
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                                          utf8proc_ssize_t(run.size()), &result, options);
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
  if (n < 0) fail(ErrorKind::internal, "Unicode normalization failed: {}", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(result), size_t(n));
}

// Normalizes the valid runs of `text`; invalid bytes pass through.
std::string normalize_form(std::string_view text, utf8proc_option_t options) {
  std::string out;
  out.reserve(text.size() + 8);
  size_t run = 0;
  size_t i = 0;
  while (i < text.size()) {
    const utf8::Seq seq = utf8::classify(text.substr(i));
    if (seq.kind == utf8::SeqKind::valid) {
      i += seq.length;
      continue;
    }
    map_valid(out, text.substr(run, i - run), options);
    out.append(text.substr(i, seq.length));
    i += seq.length;
    run = i;
  }
  map_valid(out, text.substr(run), options);
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t length = 0;
    const int32_t cp = utf8::decode(text.substr(i), length);
    if (cp < 0) {
      out.push_back(text[i]);
      i += 1;
      continue;
    }
    i += length;
    if (cp == 0x130) {  // İ lowercases to i + combining dot above (full mapping)
      out.append("i\xCC\x87");
      continue;
    }
    utf8::append(out, uint32_t(utf8proc_tolower(cp)));
  }
  return out;
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (true) {
    const size_t hit = text.find(from, i);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(i, hit - i)).append(to);
    i = hit + from.size();
  }
  out.append(text.substr(i));
  return out;
}

// SentencePiece's precompiled character map: a little-endian u32 with the trie's size in bytes,
// the trie (u32 units of a double array), then NUL-terminated replacement strings.
struct Charsmap {
  std::string_view trie;  // bytes, a multiple of 4
  std::string_view replacements;

  explicit Charsmap(std::string_view blob) {
    if (blob.size() < 4) fail(ErrorKind::format, "expected a precompiled character map of at least 4 bytes, found {}", blob.size());
    const uint32_t size = uint32_t(uint8_t(blob[0])) | uint32_t(uint8_t(blob[1])) << 8 | uint32_t(uint8_t(blob[2])) << 16 |
                          uint32_t(uint8_t(blob[3])) << 24;
    if (size % 4 != 0 || size == 0 || size > blob.size() - 4) {
      fail(ErrorKind::format, "precompiled character map: trie of {} bytes does not fit in {} bytes", size, blob.size() - 4);
    }
    trie = blob.substr(4, size);
    replacements = blob.substr(4 + size);
  }
  uint32_t unit(uint32_t index) const {
    const size_t at = size_t(index) * 4;
    if (at + 4 > trie.size()) return 0xFFFFFFFFu;  // outside: matches no label
    return uint32_t(uint8_t(trie[at])) | uint32_t(uint8_t(trie[at + 1])) << 8 | uint32_t(uint8_t(trie[at + 2])) << 16 |
           uint32_t(uint8_t(trie[at + 3])) << 24;
  }
  static uint32_t base(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
  static uint32_t label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
  static bool leaf(uint32_t u) { return ((u >> 8) & 1u) != 0; }
  static uint32_t value(uint32_t u) { return u & ((1u << 31) - 1); }

  // Appends the normalization of `text` to `out`.
  void apply(std::string_view text, std::string& out) const {
    size_t i = 0;
    while (i < text.size()) {
      size_t best_length = 0;
      uint32_t best_value = 0;
      uint32_t node = base(unit(0));
      for (size_t j = i; j < text.size(); ++j) {
        const auto c = static_cast<uint8_t>(text[j]);
        if (c == 0) break;
        node ^= c;
        const uint32_t u = unit(node);
        if (label(u) != c) break;
        node ^= base(u);
        if (leaf(u)) {
          best_length = j - i + 1;
          best_value = value(unit(node));
        }
      }
      if (best_length > 0 && best_value < replacements.size()) {
        const size_t end = replacements.find('\0', best_value);
        out.append(replacements.substr(best_value, end == std::string_view::npos ? std::string_view::npos : end - best_value));
        i += best_length;
        continue;
      }
      const utf8::Seq seq = utf8::classify(text.substr(i));
      if (seq.kind == utf8::SeqKind::valid) {
        out.append(text.substr(i, seq.length));
        i += seq.length;
      } else {
        out.append("\xEF\xBF\xBD");
        i += 1;
      }
    }
  }
};

constexpr std::string_view kSpace = "\xE2\x96\x81";

// Unicode White_Space (Rust's char::is_whitespace).
bool is_white_space_char(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// llama.cpp's reading of SentencePiece's whitespace options.
std::string sentencepiece_spaces(std::string_view text, bool prepend, bool merge) {
  std::string out;
  out.reserve(text.size() + 8);
  bool prepended = false;
  bool in_word = false;
  for (char c : text) {
    if (c != ' ') {
      if (!in_word) {
        in_word = true;
        if ((prepend && !prepended) || merge) {
          out.append(kSpace);
          prepended = true;
        }
      }
      out.push_back(c);
    } else {
      in_word = false;
      if (!merge) out.append(kSpace);
    }
  }
  return out;
}

constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 2]));
    out.push_back(kBase64[(v >> 18) & 63]);
    out.push_back(kBase64[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kBase64[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < bytes.size() ? kBase64[v & 63] : '=');
  }
  return out;
}

std::string base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) fail(ErrorKind::format, "expected base64 text of a length divisible by 4, found {}", text.size());
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      uint32_t d = 0;
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
      } else {
        const size_t at = kBase64.find(c);
        if (at == std::string_view::npos || pad > 0) fail(ErrorKind::format, "expected base64, found '{}' at {}", c, i + k);
        d = uint32_t(at);
      }
      v = v << 6 | d;
    }
    out.push_back(char(v >> 16));
    if (pad < 2) out.push_back(char((v >> 8) & 0xFF));
    if (pad < 1) out.push_back(char(v & 0xFF));
  }
  return out;
}

Normalizer::Normalizer(std::string_view spec) {
  for (auto& fields : parse_spec_lines(spec)) {
    const std::string& name = fields[0];
    if (name == "NFC" || name == "NFKC" || name == "NFD" || name == "NFKD" || name == "lowercase") {
      expect_fields(fields, 1);
      const Kind kind = name == "NFC" ? Kind::nfc : name == "NFKC" ? Kind::nfkc : name == "NFD" ? Kind::nfd
                        : name == "NFKD" ? Kind::nfkd : Kind::lowercase;
      steps_.push_back({kind, {}, {}});
    } else if (name == "prepend") {
      expect_fields(fields, 2);
      steps_.push_back({Kind::prepend, fields[1], {}});
    } else if (name == "squeeze") {
      expect_fields(fields, 2);
      if (fields[1].empty()) fail(ErrorKind::format, "expected a non-empty text in the normalizer step 'squeeze'");
      steps_.push_back({Kind::squeeze, fields[1], {}});
    } else if (name == "precompiled") {
      expect_fields(fields, 2);
      std::string blob = base64_decode(fields[1]);
      Charsmap check(blob);  // validates the layout
      steps_.push_back({Kind::precompiled, std::move(blob), {}});
    } else if (name == "sentencepiece_spaces") {
      expect_fields(fields, 3);
      for (size_t k = 1; k < 3; ++k) {
        if (fields[k] != "0" && fields[k] != "1") fail(ErrorKind::format, "expected 0 or 1 in sentencepiece_spaces, found '{}'", fields[k]);
      }
      steps_.push_back({Kind::sentencepiece_spaces, fields[1], fields[2]});
    } else if (name == "replace") {
      expect_fields(fields, 3);
      if (fields[1].empty()) fail(ErrorKind::format, "expected a non-empty pattern in the normalizer step 'replace'");
      steps_.push_back({Kind::replace, fields[1], fields[2]});
    } else {
      fail(ErrorKind::unsupported, "normalizer step '{}' is not supported (NFC, NFKC, NFD, NFKD, lowercase, prepend, replace)", name);
    }
  }
}

bool Normalizer::prepends(std::string_view text) const {
  for (const Step& s : steps_) {
    if (s.kind == Kind::prepend && s.a == text) return true;
    if (s.kind == Kind::sentencepiece_spaces && s.a == "1" && text == kSpace) return true;
  }
  return false;
}

std::string_view Normalizer::apply(std::string_view text, std::string& buffer) const {
  if (steps_.empty()) return text;
  buffer = apply(text);
  return buffer;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::nfc:
        if (!utf8::is_ascii(s)) s = normalize_form(s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        break;
      case Kind::nfkc:
        if (!utf8::is_ascii(s)) s = normalize_form(s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
        break;
      case Kind::nfd:
        if (!utf8::is_ascii(s)) s = normalize_form(s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
        break;
      case Kind::nfkd:
        if (!utf8::is_ascii(s)) s = normalize_form(s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
        break;
      case Kind::lowercase:
        s = lowercase(s);
        break;
      case Kind::prepend:
        if (!s.empty()) s.insert(0, step.a);
        break;
      case Kind::replace:
        if (s.find(step.a) != std::string::npos) s = replace_all(s, step.a, step.b);
        break;
      case Kind::squeeze: {
        const std::string twice = step.a + step.a;
        while (s.find(twice) != std::string::npos) s = replace_all(s, twice, step.a);
        break;
      }
      case Kind::precompiled: {
        std::string out;
        out.reserve(s.size() + 8);
        Charsmap(step.a).apply(s, out);
        s = std::move(out);
        break;
      }
      case Kind::sentencepiece_spaces:
        s = sentencepiece_spaces(s, step.a == "1", step.b == "1");
        break;
    }
  }
  return s;
}

PieceSplitter::PieceSplitter(std::string_view spec) {
  for (auto& fields : parse_spec_lines(spec)) {
    const std::string& name = fields[0];
    Step step;
    if (name == "metaspace") {
      expect_fields(fields, 4);
      for (const Step& earlier : steps_) {
        if (earlier.kind == Kind::metaspace) fail(ErrorKind::unsupported, "more than one metaspace split step is not supported");
      }
      step.kind = Kind::metaspace;
      step.text = fields[1];
      const std::string& scheme = fields[2];
      if (scheme == "never") {
        step.scheme = 0;
      } else if (scheme == "first") {
        step.scheme = 1;
      } else if (scheme == "always") {
        step.scheme = 2;
      } else {
        fail(ErrorKind::unsupported, "metaspace prepend scheme '{}' is not supported (always, first, never)", scheme);
      }
      if (fields[3] != "split" && fields[3] != "whole") fail(ErrorKind::format, "expected 'split' or 'whole' in the metaspace step, found '{}'", fields[3]);
      step.split = fields[3] == "split";
    } else if (name == "whitespace") {
      expect_fields(fields, 1);
      step.kind = Kind::whitespace;
      step.text = " ";  // unused
    } else if (name == "after" || name == "before" || name == "isolate") {
      expect_fields(fields, 2);
      step.kind = name == "after" ? Kind::after : name == "before" ? Kind::before : Kind::isolate;
      step.text = fields[1];
    } else {
      fail(ErrorKind::unsupported, "split step '{}' is not supported (metaspace, after, before, isolate)", name);
    }
    if (step.text.empty()) fail(ErrorKind::format, "expected a non-empty text in the split step '{}'", name);
    steps_.push_back(std::move(step));
  }
}

namespace {

// Splits each piece at every occurrence of `delim`, keeping the delimiter with the piece before it
// (after), after it (before), or alone (isolate).
void split_literal(const std::vector<std::string_view>& in, std::string_view delim, int mode,
                   std::vector<std::string_view>& out) {
  out.clear();
  for (std::string_view piece : in) {
    size_t start = 0;
    size_t pos = 0;
    while ((pos = piece.find(delim, pos)) != std::string_view::npos) {
      const size_t end = pos + delim.size();
      if (mode == 0) {  // after: the piece ends with the delimiter
        out.push_back(piece.substr(start, end - start));
        start = end;
      } else if (mode == 1) {  // before: a new piece starts at the delimiter
        if (pos > start) out.push_back(piece.substr(start, pos - start));
        start = pos;
      } else {
        if (pos > start) out.push_back(piece.substr(start, pos - start));
        out.push_back(piece.substr(pos, delim.size()));
        start = end;
      }
      pos = end;
    }
    if (start < piece.size()) out.push_back(piece.substr(start));
  }
}

}  // namespace

void PieceSplitter::split(std::string_view text, bool at_start, std::vector<std::string_view>& pieces,
                          std::string& scratch) const {
  pieces.clear();
  if (text.empty()) return;
  thread_local std::vector<std::string_view> next;
  thread_local std::vector<std::pair<size_t, size_t>> spans;
  pieces.push_back(text);
  for (const Step& step : steps_) {
    if (step.kind == Kind::metaspace) {
      // Each piece: spaces become the replacement, which goes before it as the scheme says; the
      // results are laid out in `scratch`, and the pieces point there once it is complete.
      scratch.clear();
      spans.clear();
      for (std::string_view piece : pieces) {
        const size_t begin = scratch.size();
        const bool first = at_start && piece.data() == text.data();
        const bool prepend = step.scheme == 2 || (step.scheme == 1 && first);
        const std::string replaced = replace_all(piece, " ", step.text);
        if (prepend && replaced.compare(0, step.text.size(), step.text) != 0) scratch.append(step.text);
        scratch.append(replaced);
        spans.emplace_back(begin, scratch.size() - begin);
      }
      pieces.clear();
      for (const auto& [begin, size] : spans) pieces.push_back(std::string_view(scratch).substr(begin, size));
      if (step.split) {
        split_literal(pieces, step.text, 1, next);
        pieces.swap(next);
      }
      continue;
    }
    if (step.kind == Kind::whitespace) {
      next.clear();
      for (std::string_view piece : pieces) {
        size_t i = 0;
        size_t word = std::string_view::npos;
        while (i < piece.size()) {
          size_t length = 0;
          const int32_t cp = utf8::decode(piece.substr(i), length);
          const bool space = cp >= 0 && is_white_space_char(uint32_t(cp));
          if (space && word != std::string_view::npos) {
            next.push_back(piece.substr(word, i - word));
            word = std::string_view::npos;
          } else if (!space && word == std::string_view::npos) {
            word = i;
          }
          i += cp >= 0 ? length : 1;
        }
        if (word != std::string_view::npos) next.push_back(piece.substr(word));
      }
      pieces.swap(next);
      continue;
    }
    split_literal(pieces, step.text, step.kind == Kind::after ? 0 : step.kind == Kind::before ? 1 : 2, next);
    pieces.swap(next);
  }
}

}  // namespace slm
