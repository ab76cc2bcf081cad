#include "slm/tokenizer/jinja_strings.hpp"

#include <utf8proc.h>

#include <algorithm>

#include "slm/tokenizer/jinja_value.hpp"
#include "slm/util/error.hpp"

namespace slm::jinja::py {

namespace {

bool in_set(char32_t c, const std::optional<std::u32string>& chars) {
  if (!chars) return jinja::is_space(c);
  return chars->find(c) != std::u32string::npos;
}

bool is_cased(char32_t c) {
  const auto cat = utf8proc_category(utf8proc_int32_t(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

char32_t to_upper(char32_t c) { return char32_t(utf8proc_toupper(utf8proc_int32_t(c))); }
char32_t to_lower(char32_t c) { return char32_t(utf8proc_tolower(utf8proc_int32_t(c))); }
char32_t to_title(char32_t c) { return char32_t(utf8proc_totitle(utf8proc_int32_t(c))); }

std::string map_chars(std::string_view s, char32_t (*f)(char32_t)) {
  std::u32string chars = decode_utf8(s);
  for (char32_t& c : chars) c = f(c);
  return encode_utf8(chars);
}

// Python's bytes-level search is code-point exact for valid UTF-8: a match of valid UTF-8 text
// always starts at a character boundary.
int64_t code_point_index(std::string_view s, size_t byte_pos) { return int64_t(count_code_points(s.substr(0, byte_pos))); }

}  // namespace

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string text = decode_utf8(s);
  std::optional<std::u32string> set;
  if (chars) set = decode_utf8(*chars);
  size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end && in_set(text[begin], set)) ++begin;
  }
  if (right) {
    while (end > begin && in_set(text[end - 1], set)) --end;
  }
  return encode_utf8(std::u32string_view(text).substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail(ErrorKind::invalid_argument, "empty separator");
    size_t pos = 0;
    while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
      const size_t k = s.find(*sep, pos);
      if (k == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, k - pos));
      pos = k + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  const std::u32string text = decode_utf8(s);
  size_t k = 0;
  while (true) {
    while (k < text.size() && jinja::is_space(text[k])) ++k;
    if (k >= text.size()) break;
    if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
      size_t end = text.size();
      while (end > k && jinja::is_space(text[end - 1])) --end;
      out.push_back(encode_utf8(std::u32string_view(text).substr(k, end - k)));
      break;
    }
    const size_t start = k;
    while (k < text.size() && !jinja::is_space(text[k])) ++k;
    out.push_back(encode_utf8(std::u32string_view(text).substr(start, k - start)));
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail(ErrorKind::invalid_argument, "empty separator");
    size_t end = s.size();
    while (int64_t(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t k = s.rfind(*sep, end - sep->size());
      if (k == std::string_view::npos) break;
      out.emplace_back(s.substr(k + sep->size(), end - k - sep->size()));
      end = k;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  const std::u32string text = decode_utf8(s);
  size_t k = text.size();
  while (true) {
    while (k > 0 && jinja::is_space(text[k - 1])) --k;
    if (k == 0) break;
    if (int64_t(out.size()) >= maxsplit) {
      size_t begin = 0;
      while (begin < k && jinja::is_space(text[begin])) ++begin;
      out.push_back(encode_utf8(std::u32string_view(text).substr(begin, k - begin)));
      break;
    }
    const size_t end = k;
    while (k > 0 && !jinja::is_space(text[k - 1])) --k;
    out.push_back(encode_utf8(std::u32string_view(text).substr(k, end - k)));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  const std::u32string text = decode_utf8(s);
  std::vector<std::string> out;
  size_t start = 0, k = 0;
  while (k < text.size()) {
    const char32_t c = text[k];
    const bool boundary = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                          c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!boundary) {
      ++k;
      continue;
    }
    size_t end = k + 1;
    if (c == '\r' && end < text.size() && text[end] == '\n') ++end;
    out.push_back(encode_utf8(std::u32string_view(text).substr(start, (keepends ? end : k) - start)));
    start = k = end;
  }
  if (start < text.size()) out.push_back(encode_utf8(std::u32string_view(text).substr(start)));
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every character and at the end.
    const std::u32string text = decode_utf8(s);
    int64_t done = 0;
    for (char32_t c : text) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      out += encode_utf8(std::u32string_view(&c, 1));
    }
    if (count < 0 || done < count) out += replacement;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t k = s.find(old, pos);
    if (k == std::string_view::npos) break;
    out += s.substr(pos, k - pos);
    out += replacement;
    pos = k + old.size();
    ++done;
  }
  out += s.substr(pos);
  return out;
}

int64_t find(std::string_view s, std::string_view sub) {
  const size_t k = s.find(sub);
  return k == std::string_view::npos ? -1 : code_point_index(s, k);
}

int64_t rfind(std::string_view s, std::string_view sub) {
  const size_t k = s.rfind(sub);
  return k == std::string_view::npos ? -1 : code_point_index(s, k);
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return int64_t(count_code_points(s)) + 1;
  int64_t n = 0;
  size_t pos = 0;
  while (true) {
    const size_t k = s.find(sub, pos);
    if (k == std::string_view::npos) return n;
    ++n;
    pos = k + sub.size();
  }
}

std::string upper(std::string_view s) { return map_chars(s, to_upper); }
std::string lower(std::string_view s) { return map_chars(s, to_lower); }

std::string swapcase(std::string_view s) {
  return map_chars(s, [](char32_t c) {
    if (utf8proc_isupper(utf8proc_int32_t(c))) return to_lower(c);
    if (utf8proc_islower(utf8proc_int32_t(c))) return to_upper(c);
    return c;
  });
}

std::string title(std::string_view s) {
  std::u32string text = decode_utf8(s);
  bool previous_cased = false;
  for (char32_t& c : text) {
    if (is_cased(c)) {
      c = previous_cased ? to_lower(c) : to_title(c);
      previous_cased = true;
    } else {
      previous_cased = false;
    }
  }
  return encode_utf8(text);
}

std::string capitalize(std::string_view s) {
  std::u32string text = decode_utf8(s);
  for (size_t k = 0; k < text.size(); ++k) text[k] = k == 0 ? to_title(text[k]) : to_lower(text[k]);
  return encode_utf8(text);
}

bool is_lower(std::string_view s) {
  bool cased = false;
  for (char32_t c : decode_utf8(s)) {
    if (utf8proc_isupper(utf8proc_int32_t(c)) || utf8proc_category(utf8proc_int32_t(c)) == UTF8PROC_CATEGORY_LT) {
      return false;
    }
    if (utf8proc_islower(utf8proc_int32_t(c))) cased = true;
  }
  return cased;
}

bool is_upper(std::string_view s) {
  bool cased = false;
  for (char32_t c : decode_utf8(s)) {
    if (utf8proc_islower(utf8proc_int32_t(c)) || utf8proc_category(utf8proc_int32_t(c)) == UTF8PROC_CATEGORY_LT) {
      return false;
    }
    if (utf8proc_isupper(utf8proc_int32_t(c))) cased = true;
  }
  return cased;
}

namespace {
template <typename Pred>
bool all_of_nonempty(std::string_view s, Pred pred) {
  const std::u32string text = decode_utf8(s);
  return !text.empty() && std::all_of(text.begin(), text.end(), pred);
}
bool letter(char32_t c) {
  const auto cat = utf8proc_category(utf8proc_int32_t(c));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}
bool digit(char32_t c) {
  const auto cat = utf8proc_category(utf8proc_int32_t(c));
  return cat == UTF8PROC_CATEGORY_ND || (c >= 0xB2 && c <= 0xB3) || c == 0xB9 || (c >= 0x2070 && c <= 0x2079);
}
}  // namespace

bool is_alpha(std::string_view s) { return all_of_nonempty(s, letter); }
bool is_digit(std::string_view s) { return all_of_nonempty(s, digit); }
bool is_alnum(std::string_view s) {
  return all_of_nonempty(s, [](char32_t c) {
    const auto cat = utf8proc_category(utf8proc_int32_t(c));
    return letter(c) || digit(c) || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
  });
}
bool is_space(std::string_view s) { return all_of_nonempty(s, [](char32_t c) { return jinja::is_space(c); }); }

std::string pad(std::string_view s, int64_t width, std::string_view fill, int where) {
  const int64_t length = int64_t(count_code_points(s));
  if (count_code_points(fill) != 1) {
    fail(ErrorKind::invalid_argument, "The fill character must be exactly one character long");
  }
  if (width <= length) return std::string(s);
  const int64_t margin = width - length;
  int64_t left = 0;
  if (where == 0) {
    left = margin / 2 + (margin & width & 1);
  } else if (where > 0) {
    left = margin;
  }
  std::string out;
  for (int64_t k = 0; k < left; ++k) out += fill;
  out += s;
  for (int64_t k = 0; k < margin - left; ++k) out += fill;
  return out;
}

}  // namespace slm::jinja::py
