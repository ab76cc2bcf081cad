#define PCRE2_CODE_UNIT_WIDTH 8
#include "slm/tasks/pii.hpp"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <fmt/ranges.h>
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>

#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {

// A compiled pattern (UTF, Unicode properties for \b and \w) and its matches.
class Pattern {
 public:
  explicit Pattern(const char* pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                          &error, &offset, nullptr);
    if (!code_) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error, message.data(), message.size());
      fail(ErrorKind::internal, "detector pattern does not compile at {}: {}", offset,
           reinterpret_cast<const char*>(message.data()));
    }
  }
  ~Pattern() { pcre2_code_free(code_); }
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // Byte ranges of the non-overlapping matches, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> out;
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    size_t at = 0;
    while (at <= text.size()) {
      // The input was checked as UTF-8 once; no need to check again per match.
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), at,
                                 PCRE2_NO_UTF_CHECK, data.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) fail(ErrorKind::internal, "detector pattern match failed ({})", rc);
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
      const size_t b = ov[0], e = ov[1];
      if (e > b) out.emplace_back(b, e);
      at = e > b ? e : b + 1;
      while (at < text.size() && (uint8_t(text[at]) & 0xC0) == 0x80) ++at;  // stay on a character start
    }
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
};

std::string keep_alnum(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(uint8_t(c))) out.push_back(char(std::toupper(uint8_t(c))));
  }
  return out;
}

int count_digits(std::string_view s) {
  return int(std::count_if(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }));
}

struct Raw {
  size_t begin, end;  // bytes
  const char* type;
  double score;
  const char* source;
};

// --- detectors -------------------------------------------------------------------------------

// Tokens shaped like an IBAN (checksum or not) or an ISBN: digit groups inside them are account or
// book numbers, never phone or card numbers of their own.
bool inside_account_or_isbn(std::string_view text, size_t b, size_t e) {
  static const Pattern shapes(
      R"((?<![\w])(?:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?|ISBN(?:-1[03])?:? ?[0-9][0-9 -]{8,16}[0-9X])(?![\w]))");
  // Only the neighbourhood of the candidate can hold such a token (at most 34 characters long).
  const size_t from = b > 48 ? b - 48 : 0;
  const size_t to = std::min(text.size(), e + 48);
  for (auto [sb, se] : shapes.find_all(text.substr(from, to - from))) {
    if (from + sb <= b && e <= from + se) return true;
  }
  return false;
}

void detect_email(std::string_view text, std::vector<Raw>& out) {
  static const Pattern p(
      R"((?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]))");
  for (auto [b, e] : p.find_all(text)) out.push_back({b, e, "EMAIL", 0.95, "email"});
}

void detect_url(std::string_view text, std::vector<Raw>& out) {
  static const Pattern p(R"((?<![\w@])(?:https?://|ftp://|www\.)[^\s<>"'`]+)");
  for (auto [b, e] : p.find_all(text)) {
    // A comma ends a URL: in lists and CSV rows the next item follows it directly.
    if (const size_t comma = text.substr(b, e - b).find(','); comma != std::string_view::npos) e = b + comma;
    // Sentence punctuation and closing brackets right after a URL are rarely part of it.
    while (e > b && std::string_view(".,;:!?)]}'\"").find(text[e - 1]) != std::string_view::npos) {
      if (text[e - 1] == ')' && std::count(text.begin() + std::ptrdiff_t(b), text.begin() + std::ptrdiff_t(e), '(') > 0) break;
      --e;
    }
    if (e - b > 7) out.push_back({b, e, "URL", 0.6, "url"});
  }
}

void detect_ip(std::string_view text, std::vector<Raw>& out) {
  static const Pattern v4(
      R"((?<![\w.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![\w]|\.[0-9]))");
  for (auto [b, e] : v4.find_all(text)) out.push_back({b, e, "IP_ADDRESS", 0.95, "ipv4"});
  // Candidates for IPv6 (hex groups and colons, optionally a dotted IPv4 tail); inet_pton decides.
  static const Pattern v6(R"((?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?![\w:]))");
  for (auto [b, e] : v6.find_all(text)) {
    std::string candidate(text.substr(b, e - b));
    in6_addr addr{};
    if (candidate.size() >= 2 && inet_pton(AF_INET6, candidate.c_str(), &addr) == 1) {
      out.push_back({b, e, "IP_ADDRESS", 0.95, "ipv6"});
    }
  }
}

void detect_credit_card(std::string_view text, std::vector<Raw>& out) {
  // 13..19 digits, optionally in groups split by single spaces or dashes.
  static const Pattern p(R"((?<![\w-])[0-9](?:[ -]?[0-9]){12,18}(?![\w]|-[0-9]))");
  for (auto [b, e] : p.find_all(text)) {
    const std::string digits = keep_alnum(text.substr(b, e - b));
    if (!luhn_valid(digits)) continue;
    if (inside_account_or_isbn(text, b, e)) continue;
    // Issuer prefixes (Visa 4, Mastercard 51-55/2221-2720, Amex 34/37, Discover 6, Diners 36/38,
    // JCB 35) make a Luhn-valid number more likely to be a card.
    const char c0 = digits[0];
    const bool issuer = c0 == '4' || c0 == '5' || c0 == '2' || c0 == '3' || c0 == '6';
    out.push_back({b, e, "CREDIT_CARD", issuer ? 0.95 : 0.7, "luhn"});
  }
}

void detect_iban(std::string_view text, std::vector<Raw>& out) {
  static const Pattern p(R"((?<![\w])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w]))");
  static const Pattern loose(R"((?<![\w])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{1,4}){3,9})");
  std::vector<std::pair<size_t, size_t>> cands = p.find_all(text);
  for (auto c : loose.find_all(text)) cands.push_back(c);
  std::sort(cands.begin(), cands.end());
  size_t last_end = 0;
  for (auto [b, e] : cands) {
    if (b < last_end) continue;
    // The candidate may run into a following word of capitals: try shorter ends at group boundaries.
    size_t end = e;
    while (end > b) {
      const std::string compact = keep_alnum(text.substr(b, end - b));
      if (compact.size() >= 15 && iban_valid(compact)) {
        out.push_back({b, end, "IBAN", 0.95, "iban_mod97"});
        last_end = end;
        break;
      }
      const size_t space = text.substr(b, end - b).rfind(' ');
      if (space == std::string_view::npos || space == 0) break;
      end = b + space;
    }
  }
}

void detect_ssn(std::string_view text, std::vector<Raw>& out) {
  static const Pattern p(R"((?<![\w-])[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}(?![\w]|-[0-9]))");
  for (auto [b, e] : p.find_all(text)) {
    if (us_ssn_valid(keep_alnum(text.substr(b, e - b)))) out.push_back({b, e, "US_SSN", 0.85, "us_ssn"});
  }
}

void detect_phone(std::string_view text, std::vector<Raw>& out) {
  // International: + country code, then groups; national: optional (area) then groups of 2..4.
  static const Pattern p(
      R"((?<![\w+])(?:\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}|(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,4})(?:[ .-]?[0-9]{2,4}){1,5}(?![\w]|[.-][0-9]))");
  // National look-alikes of other things: the US SSN shape (3-2-4 digits) and dotted quads.
  static const Pattern ssn_shape(R"(^[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}$)");
  static const Pattern dotted_quad(R"(^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$)");
  for (auto [b, e] : p.find_all(text)) {
    std::string_view s = text.substr(b, e - b);
    const int digits = count_digits(s);
    const bool international = s[0] == '+';
    const bool separated = s.find_first_of(" .-()") != std::string_view::npos;
    if (international) {
      if (digits < 8 || digits > 15) continue;
      out.push_back({b, e, "PHONE", 0.75, "phone"});
    } else {
      // Bare digit runs are too often other numbers; national numbers need separators or a leading 0.
      if (digits < 7 || digits > 12) continue;
      if (!separated && s[0] != '0') continue;
      if (!ssn_shape.find_all(s).empty() || !dotted_quad.find_all(s).empty()) continue;
      if (inside_account_or_isbn(text, b, e)) continue;
      out.push_back({b, e, "PHONE", separated ? 0.6 : 0.4, "phone"});
    }
  }
}

bool valid_date(int y, int m, int d) {
  if (m < 1 || m > 12 || d < 1) return false;
  static constexpr int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (d > days[m - 1]) return false;
  if (m == 2 && d == 29 && y >= 0 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return false;
  return true;
}

void detect_date_time(std::string_view text, std::vector<Raw>& out) {
  // ISO 8601 date, optionally with a time and zone.
  static const Pattern iso(
      R"((?<![\w-])([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?(?:Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?)?(?![\w]))");
  for (auto [b, e] : iso.find_all(text)) {
    const std::string_view s = text.substr(b, e - b);
    if (valid_date(std::stoi(std::string(s.substr(0, 4))), std::stoi(std::string(s.substr(5, 2))),
                   std::stoi(std::string(s.substr(8, 2))))) {
      out.push_back({b, e, "DATE_TIME", 0.85, "date"});
    }
  }
  // d/m/y or m/d/y with '/', '.' or '-' (one separator kind).
  static const Pattern numeric(R"((?<![\w./-])([0-9]{1,2})([/.-])([0-9]{1,2})\2([0-9]{4}|[0-9]{2})(?![\w]|[./-][0-9]))");
  for (auto [b, e] : numeric.find_all(text)) {
    const std::string s(text.substr(b, e - b));
    const size_t s1 = s.find_first_of("/.-"), s2 = s.find_first_of("/.-", s1 + 1);
    const int a = std::stoi(s.substr(0, s1)), c = std::stoi(s.substr(s1 + 1, s2 - s1 - 1));
    int y = std::stoi(s.substr(s2 + 1));
    if (s.size() - s2 - 1 == 2) y += 2000;
    // With a four-digit year the shape is a date more often than a phone number ("19.08.2026").
    const double score = s.size() - s2 - 1 == 4 ? 0.65 : 0.6;
    if (valid_date(y, c, a) || valid_date(y, a, c)) out.push_back({b, e, "DATE_TIME", score, "date"});
  }
  // Month names: "March 5, 2024", "5 March 2024", "Mar 5th", "5th of March 2024".
  static const char* months =
      R"((?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
      R"(|Januar|Februar|März|Mai|Juni|Juli|Oktober|Dezember)"
      R"(|janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre)"
      R"(|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre))";
  // Day first (English "5th of March 2024", German "5. März 2024", French "5 mars 2024", Spanish
  // "5 de marzo de 2024"), or month first ("March 5, 2024").
  static const Pattern named((std::string(R"((?<![\w])(?:(?:[0-3]?[0-9])(?:st|nd|rd|th|\.)?(?: of| de)? )" ) + months +
                              R"(\.?(?:(?:,? | de )[0-9]{4})?|)" + months +
                              R"(\.? [0-3]?[0-9](?:st|nd|rd|th)?(?:,? [0-9]{4})?)(?![\w]))")
                                 .c_str());
  for (auto [b, e] : named.find_all(text)) {
    const std::string_view s = text.substr(b, e - b);
    // A month name alone ("May") is not a date: a day or a year must come with it.
    if (count_digits(s) == 0) continue;
    out.push_back({b, e, "DATE_TIME", 0.7, "date"});
  }
  // Clock times: 14:30, 9:05:10, 3pm, 10:30 a.m.
  static const Pattern clock(
      R"((?<![\w:.])(?:(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?(?: ?(?:[AaPp]\.?[Mm]\.?))?|(?:1[0-2]|0?[1-9]) ?(?:[AaPp]\.?[Mm]\.?))(?![\w]|:[0-9]))");
  for (auto [b, e] : clock.find_all(text)) out.push_back({b, e, "DATE_TIME", 0.5, "time"});
}

using Detector = void (*)(std::string_view, std::vector<Raw>&);
struct DetectorEntry {
  const char* type;
  Detector detect;
};
const std::array<DetectorEntry, 8> kDetectors = {{
    {"EMAIL", detect_email},
    {"PHONE", detect_phone},
    {"CREDIT_CARD", detect_credit_card},
    {"IBAN", detect_iban},
    {"US_SSN", detect_ssn},
    {"IP_ADDRESS", detect_ip},
    {"URL", detect_url},
    {"DATE_TIME", detect_date_time},
}};

}  // namespace

const std::vector<std::string>& rule_entity_types() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> t;
    for (const auto& d : kDetectors) t.emplace_back(d.type);
    return t;
  }();
  return types;
}

bool luhn_valid(std::string_view digits) {
  if (digits.size() < 13 || digits.size() > 19) return false;
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    const char c = digits[i];
    if (c < '0' || c > '9') return false;
    int d = c - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool iban_valid(std::string_view iban) {
  if (iban.size() < 15 || iban.size() > 34) return false;
  if (!std::isupper(uint8_t(iban[0])) || !std::isupper(uint8_t(iban[1])) || !std::isdigit(uint8_t(iban[2])) ||
      !std::isdigit(uint8_t(iban[3]))) {
    return false;
  }
  // Move the first four characters to the end, letters as 10..35, remainder mod 97 must be 1.
  int remainder = 0;
  auto feed = [&](char c) -> bool {
    if (std::isdigit(uint8_t(c))) {
      remainder = (remainder * 10 + (c - '0')) % 97;
    } else if (std::isupper(uint8_t(c))) {
      const int v = c - 'A' + 10;
      remainder = (remainder * 100 + v) % 97;
    } else {
      return false;
    }
    return true;
  };
  for (size_t i = 4; i < iban.size(); ++i) {
    if (!feed(iban[i])) return false;
  }
  for (size_t i = 0; i < 4; ++i) {
    if (!feed(iban[i])) return false;
  }
  return remainder == 1;
}

bool us_ssn_valid(std::string_view digits) {
  if (digits.size() != 9 || count_digits(digits) != 9) return false;
  const std::string_view area = digits.substr(0, 3), group = digits.substr(3, 2), serial = digits.substr(5, 4);
  if (area == "000" || area == "666" || area[0] == '9') return false;
  if (group == "00" || serial == "0000") return false;
  // Numbers used in advertising and known to be invalid.
  if (digits == "078051120" || digits == "219099999" || digits == "123456789") return false;
  return true;
}

std::vector<size_t> code_point_bytes(std::string_view text) {
  std::vector<size_t> starts;
  starts.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    const uint8_t c = uint8_t(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > text.size()) {
      fail(ErrorKind::invalid_argument, "expected UTF-8 text, found byte 0x{:02x} at offset {}", c, i);
    }
    for (size_t k = 1; k < len; ++k) {
      if ((uint8_t(text[i + k]) & 0xC0) != 0x80) {
        fail(ErrorKind::invalid_argument, "expected UTF-8 text, found byte 0x{:02x} at offset {}",
             uint8_t(text[i + k]), i + k);
      }
    }
    starts.push_back(i);
    i += len;
  }
  starts.push_back(text.size());
  return starts;
}

std::vector<int64_t> code_point_index(std::string_view text) {
  const std::vector<size_t> starts = code_point_bytes(text);
  std::vector<int64_t> index(text.size() + 1, 0);
  for (size_t cp = 0; cp + 1 < starts.size(); ++cp) {
    for (size_t b = starts[cp]; b < starts[cp + 1]; ++b) index[b] = int64_t(cp);
  }
  index[text.size()] = int64_t(starts.size() - 1);
  return index;
}

std::vector<Entity> detect_rules(std::string_view text, const std::vector<std::string>& types) {
  for (const auto& t : types) {
    const auto& known = rule_entity_types();
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      fail(ErrorKind::invalid_argument, "expected an entity type of the rule detectors ({}), found '{}'",
           fmt::format("{}", fmt::join(known, ", ")), t);
    }
  }
  const std::vector<int64_t> index = code_point_index(text);
  std::vector<Raw> raw;
  for (const auto& d : kDetectors) {
    if (!types.empty() && std::find(types.begin(), types.end(), d.type) == types.end()) continue;
    d.detect(text, raw);
  }
  std::vector<Entity> out;
  out.reserve(raw.size());
  for (const Raw& r : raw) out.push_back({r.type, index[r.begin], index[r.end], r.score, r.source});
  std::stable_sort(out.begin(), out.end(), [](const Entity& a, const Entity& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  return out;
}

std::vector<Entity> resolve_overlaps(std::vector<Entity> entities) {
  std::stable_sort(entities.begin(), entities.end(), [](const Entity& a, const Entity& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.end - a.start != b.end - b.start) return a.end - a.start > b.end - b.start;
    return a.start < b.start;
  });
  std::vector<Entity> kept;
  for (auto& e : entities) {
    if (e.end <= e.start) continue;
    const bool overlaps = std::any_of(kept.begin(), kept.end(),
                                      [&](const Entity& k) { return e.start < k.end && k.start < e.end; });
    if (!overlaps) kept.push_back(std::move(e));
  }
  std::sort(kept.begin(), kept.end(), [](const Entity& a, const Entity& b) { return a.start < b.start; });
  return kept;
}

RedactOperator parse_operator(std::string_view name) {
  if (name == "replace") return RedactOperator::replace;
  if (name == "mask") return RedactOperator::mask;
  if (name == "hash") return RedactOperator::hash;
  if (name == "redact") return RedactOperator::redact;
  fail(ErrorKind::invalid_argument, "expected an operator (replace, mask, hash, redact), found '{}'", name);
}

namespace {
std::string sha256_hex(std::string_view salt, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), salt.data(), salt.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 || EVP_DigestFinal_ex(ctx.get(), md.data(), &n) != 1) {
    fail(ErrorKind::internal, "SHA-256 failed in OpenSSL");
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}
}  // namespace

std::string apply_operator(std::string_view text, const std::vector<Entity>& entities, RedactOperator op,
                           std::string_view salt) {
  const std::vector<size_t> starts = code_point_bytes(text);
  const int64_t n = int64_t(starts.size()) - 1;
  std::string out;
  out.reserve(text.size());
  int64_t at = 0;
  for (const Entity& e : entities) {
    if (e.start < at || e.end > n || e.end < e.start) {
      fail(ErrorKind::invalid_argument, "expected sorted, non-overlapping entities within {} code points, found [{}, {})",
           n, e.start, e.end);
    }
    out.append(text.substr(starts[size_t(at)], starts[size_t(e.start)] - starts[size_t(at)]));
    const std::string_view span = text.substr(starts[size_t(e.start)], starts[size_t(e.end)] - starts[size_t(e.start)]);
    switch (op) {
      case RedactOperator::replace: out += "<" + e.type + ">"; break;
      case RedactOperator::mask: out.append(size_t(e.end - e.start), '*'); break;
      case RedactOperator::hash: out += sha256_hex(salt, span).substr(0, 16); break;
      case RedactOperator::redact: break;
    }
    at = e.end;
  }
  out.append(text.substr(starts[size_t(at)]));
  return out;
}

}  // namespace slm::tasks
