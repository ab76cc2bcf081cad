#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "slm/tasks/pii.hpp"
#include "slm/util/error.hpp"

using namespace slm::tasks;

namespace {

// Code points of a UTF-8 string, counted independently of the library (bytes that start a character).
int64_t cps(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

struct Labeled {
  std::string before, span, after, type;
};

// Realistic strings, each holding one span of a known type.
const std::vector<Labeled> kPositive = {
    {"Write to ", "anna.schmidt+news@mail.example.co.uk", " today.", "EMAIL"},
    {"Contact: ", "j.doe@corp-mail.com", ", thanks", "EMAIL"},
    {"Call me at ", "+1 415 555 0132", " tomorrow", "PHONE"},
    {"Office ", "+44 20 7946 0958", ".", "PHONE"},
    {"US line ", "(415) 555-0132", " after five", "PHONE"},
    {"Festnetz ", "030 1234567", " bitte", "PHONE"},
    {"Mobile ", "+49 151 23456789", " (private)", "PHONE"},
    {"Card ", "4111 1111 1111 1111", " exp 12/27", "CREDIT_CARD"},
    {"MC ", "5500-0000-0000-0004", " ok", "CREDIT_CARD"},
    {"Amex ", "378282246310005", " on file", "CREDIT_CARD"},
    {"IBAN ", "DE89 3704 0044 0532 0130 00", " BIC COBADEFFXXX", "IBAN"},
    {"Pay to ", "GB82WEST12345698765432", ", ref 7", "IBAN"},
    {"Compte ", "FR14 2004 1010 0505 0001 3M02 606", " merci", "IBAN"},
    {"SSN ", "536-22-8741", " on the form", "US_SSN"},
    {"Server ", "192.168.10.254", " is down", "IP_ADDRESS"},
    {"v6 host ", "2001:db8:85a3::8a2e:370:7334", " replied", "IP_ADDRESS"},
    {"loopback ", "::1", " only", "IP_ADDRESS"},
    {"See ", "https://example.org/path?q=1&r=two", ".", "URL"},
    {"Visit ", "www.example.com/docs", ", please", "URL"},
    {"Due ", "2024-03-15", " at noon", "DATE_TIME"},
    {"Logged ", "2023-11-02T14:05:33Z", " by cron", "DATE_TIME"},
    {"Born on ", "March 5, 1990", " in Ohio", "DATE_TIME"},
    {"Meeting ", "15/04/2024", " confirmed", "DATE_TIME"},
};

// Look-alikes that fail their checksum or shape: none may be reported as the type.
const std::vector<std::pair<std::string, std::string>> kNegative = {
    {"Card 4111 1111 1111 1112 declined", "CREDIT_CARD"},
    {"Order 1234 5678 9012 3456 shipped", "CREDIT_CARD"},
    {"IBAN DE89 3704 0044 0532 0130 01 rejected", "IBAN"},
    {"Ref GB00WEST12345698765432 bounced", "IBAN"},
    {"SSN 000-12-3456 is invalid", "US_SSN"},
    {"SSN 666-45-1234 is invalid", "US_SSN"},
    {"SSN 912-45-1234 is invalid", "US_SSN"},
    {"Version 1.2.3.4.5 released", "IP_ADDRESS"},
    {"Address 256.1.1.1 is not one", "IP_ADDRESS"},
    {"Time 12:30:45 is not an address", "IP_ADDRESS"},
    {"Not a date: 2024-02-30", "DATE_TIME"},
    {"Not a date: 31/31/2024", "DATE_TIME"},
    {"Price 12345 units", "PHONE"},
    {"user at example dot com", "EMAIL"},
};

}  // namespace

TEST(Checksums, Luhn) {
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("5500000000000004"));
  EXPECT_TRUE(luhn_valid("378282246310005"));
  EXPECT_TRUE(luhn_valid("6011111111111117"));
  EXPECT_FALSE(luhn_valid("4111111111111112"));
  EXPECT_FALSE(luhn_valid("378282246310006"));
  EXPECT_FALSE(luhn_valid("411111111111"));      // too short
  EXPECT_FALSE(luhn_valid("41111111111111a1"));  // not digits
}

TEST(Checksums, Iban) {
  EXPECT_TRUE(iban_valid("DE89370400440532013000"));
  EXPECT_TRUE(iban_valid("GB82WEST12345698765432"));
  EXPECT_TRUE(iban_valid("FR1420041010050500013M02606"));
  EXPECT_TRUE(iban_valid("NL91ABNA0417164300"));
  EXPECT_FALSE(iban_valid("DE89370400440532013001"));
  EXPECT_FALSE(iban_valid("GB82WEST12345698765433"));
  EXPECT_FALSE(iban_valid("NL91ABNA041716430"));  // one digit short: mod-97 fails
  EXPECT_FALSE(iban_valid("de89370400440532013000"));
  // Swapping two digits changes the remainder.
  EXPECT_FALSE(iban_valid("DE89370400440532013000" + std::string()) == iban_valid("DE89370400440523013000"));
}

TEST(Checksums, Ssn) {
  EXPECT_TRUE(us_ssn_valid("536228741"));
  EXPECT_FALSE(us_ssn_valid("000228741"));
  EXPECT_FALSE(us_ssn_valid("536008741"));
  EXPECT_FALSE(us_ssn_valid("536220000"));
  EXPECT_FALSE(us_ssn_valid("53622874"));
}

TEST(Detect, LabeledPositives) {
  for (const auto& l : kPositive) {
    const std::string text = l.before + l.span + l.after;
    const auto found = resolve_overlaps(detect_rules(text));
    bool hit = false;
    for (const auto& e : found) {
      if (e.type == l.type && e.start == cps(l.before) && e.end == cps(l.before) + cps(l.span)) hit = true;
    }
    std::string got;
    for (const auto& e : found) got += e.type + "[" + std::to_string(e.start) + "," + std::to_string(e.end) + ") ";
    EXPECT_TRUE(hit) << text << " -> " << got;
  }
}

TEST(Detect, LabeledNegatives) {
  for (const auto& [text, type] : kNegative) {
    for (const auto& e : detect_rules(text)) {
      EXPECT_NE(e.type, type) << text << ": [" << e.start << "," << e.end << ") from " << e.source;
    }
  }
}

TEST(Detect, OffsetsAreCodePointsOnNonAsciiText) {
  const std::string before = "Grüße aus Köln 🙂 — schreib an ";
  const std::string email = "zoë@example.com";  // non-ASCII local part: not matched whole
  const std::string mid = " oder ";
  const std::string mail2 = "koeln.buero@example.de";
  const std::string tail = ", Tel. +49 221 1234567 ✓";
  const std::string text = before + email + mid + mail2 + tail;
  const auto found = resolve_overlaps(detect_rules(text));
  const int64_t s2 = cps(before + email + mid);
  bool mail_ok = false, phone_ok = false;
  for (const auto& e : found) {
    if (e.type == "EMAIL" && e.start == s2 && e.end == s2 + cps(mail2)) mail_ok = true;
    const int64_t ps = cps(before + email + mid + mail2 + ", Tel. ");
    if (e.type == "PHONE" && e.start == ps && e.end == ps + cps("+49 221 1234567")) phone_ok = true;
  }
  EXPECT_TRUE(mail_ok);
  EXPECT_TRUE(phone_ok);
  // Replacing by code point offsets keeps the surrounding multi-byte text intact.
  const std::string masked = apply_operator(text, found, RedactOperator::replace);
  EXPECT_NE(masked.find("Grüße aus Köln 🙂 — "), std::string::npos);
  EXPECT_NE(masked.find("<EMAIL>"), std::string::npos);
  EXPECT_NE(masked.find("<PHONE> ✓"), std::string::npos);
}

TEST(Detect, TypeFilterAndErrors) {
  const std::string text = "mail a@b.io or call +1 415 555 0132";
  const auto only = detect_rules(text, {"PHONE"});
  ASSERT_FALSE(only.empty());
  for (const auto& e : only) EXPECT_EQ(e.type, "PHONE");
  EXPECT_THROW(detect_rules(text, {"NOPE"}), slm::Error);
  EXPECT_THROW(detect_rules(std::string("bad \xff byte")), slm::Error);
}

TEST(Resolve, ScoreThenLength) {
  std::vector<Entity> e = {
      {"A", 0, 10, 0.5, "x"}, {"B", 5, 8, 0.9, "y"}, {"C", 8, 12, 0.9, "z"}, {"D", 12, 20, 0.5, "w"},
      {"E", 20, 22, 0.4, "v"}, {"F", 20, 25, 0.4, "u"},
  };
  const auto kept = resolve_overlaps(e);
  std::vector<std::string> types;
  for (const auto& k : kept) types.push_back(k.type);
  // B and C (0.9) win over A; D touches C without overlapping; F is longer than E at equal score.
  EXPECT_EQ(types, (std::vector<std::string>{"B", "C", "D", "F"}));
}

TEST(Operators, AllFour) {
  const std::string text = "Hi Zoë, mail zoe@example.com now";
  const auto found = resolve_overlaps(detect_rules(text));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(apply_operator(text, found, RedactOperator::replace), "Hi Zoë, mail <EMAIL> now");
  EXPECT_EQ(apply_operator(text, found, RedactOperator::mask), "Hi Zoë, mail " + std::string(15, '*') + " now");
  EXPECT_EQ(apply_operator(text, found, RedactOperator::redact), "Hi Zoë, mail  now");
  const std::string h1 = apply_operator(text, found, RedactOperator::hash, "salt-a");
  const std::string h2 = apply_operator(text, found, RedactOperator::hash, "salt-b");
  const std::string h3 = apply_operator(text, found, RedactOperator::hash, "salt-a");
  EXPECT_EQ(h1, h3);
  EXPECT_NE(h1, h2);
  // SHA-256("" + "zoe@example.com") = the digest of the bare address.
  EXPECT_EQ(apply_operator(text, found, RedactOperator::hash, ""), "Hi Zoë, mail 3e693cf7e5b67880 now");
  EXPECT_EQ(parse_operator("mask"), RedactOperator::mask);
  EXPECT_THROW(parse_operator("shred"), slm::Error);
}

namespace slm::tasks {
namespace {

// After overlap resolution, the one finding covering `needle` (code points), or "" when none does.
std::string resolved_type_of(const std::string& text, const std::string& needle) {
  const size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  const auto idx = code_point_index(text);
  const int64_t s = idx[at], e = idx[at + needle.size()];
  for (const auto& f : resolve_overlaps(detect_rules(text))) {
    if (f.start == s && f.end == e) return f.type;
    if (f.start < e && s < f.end) return f.type + " (partial)";
  }
  return "";
}

// Formats and look-alikes the labelled corpus (tests/data/pii) brought up.
TEST(Detect, CorpusFormatsAndLookAlikes) {
  EXPECT_EQ(resolved_type_of("Der Termin ist am 19.08.2026.", "19.08.2026"), "DATE_TIME");
  EXPECT_EQ(resolved_type_of("Geboren am 5. März 1958.", "5. März 1958"), "DATE_TIME");
  EXPECT_EQ(resolved_type_of("Né le 6 juillet 1990.", "6 juillet 1990"), "DATE_TIME");
  EXPECT_EQ(resolved_type_of("Nacido el 28 de abril de 1991.", "28 de abril de 1991"), "DATE_TIME");
  EXPECT_EQ(resolved_type_of("Tél. : +33 6 34 78 61 22", "+33 6 34 78 61 22"), "PHONE");
  EXPECT_EQ(resolved_type_of("Anna,https://shop.example/u/12,666-14-0476", "https://shop.example/u/12"), "URL");
  // Look-alikes that are none of the rule types.
  EXPECT_EQ(resolved_type_of("Reference 000-82-3079 (invalid SSN).", "000-82-3079"), "");
  EXPECT_EQ(resolved_type_of("Reference 949 11 9251 (invalid SSN).", "949 11 9251"), "");
  EXPECT_EQ(resolved_type_of("Reference 550.66.126.203 here.", "550.66.126.203"), "");
  // Digit groups inside an IBAN whose check digits fail, and inside an ISBN.
  EXPECT_EQ(resolved_type_of("Ref FR09 1672 9715 1092 6428 99 ok", "1672 9715 1092 6428"), "");
  EXPECT_EQ(resolved_type_of("Ref NL74 ABNA 8214 5862 84 ok", "8214 5862 84"), "");
  EXPECT_EQ(resolved_type_of("ISBN 978-7-21-889948-5 is a book", "978-7-21-889948-5"), "");
  // A valid card and a valid IBAN are still found whole.
  EXPECT_EQ(resolved_type_of("Card 4111-1111-1111-1111 ok", "4111-1111-1111-1111"), "CREDIT_CARD");
  EXPECT_EQ(resolved_type_of("IBAN DE89 3704 0044 0532 0130 00 ok", "DE89 3704 0044 0532 0130 00"), "IBAN");
}

}  // namespace
}  // namespace slm::tasks
