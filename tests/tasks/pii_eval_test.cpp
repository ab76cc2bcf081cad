// Scoring PII detection: the metric arithmetic on a hand-made set, the labelled corpus's own
// consistency (spans, checksums of positives and look-alikes), and the rule detectors' floor on it.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>

#include "slm/tasks/pii.hpp"
#include "slm/tasks/pii_eval.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {

std::string corpus_path() { return std::string(SLM_TEST_DATA) + "/pii/corpus.jsonl"; }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const TypeScore& row(const std::vector<TypeScore>& scores, const std::string& type) {
  for (const auto& s : scores) {
    if (s.type == type) return s;
  }
  throw std::runtime_error("no row " + type);
}

TEST(PiiEval, FBetaByHand) {
  EXPECT_DOUBLE_EQ(f_beta(1.0, 1.0, 2.0), 1.0);
  EXPECT_DOUBLE_EQ(f_beta(0.0, 0.0, 2.0), 0.0);
  // F2 = 5PR / (4P + R): P = 2/3, R = 1/2 -> (5/3) / (19/6) = 10/19.
  EXPECT_NEAR(f_beta(2.0 / 3.0, 0.5, 2.0), 10.0 / 19.0, 1e-12);
  // F1 is the harmonic mean: P = 1/2, R = 1 -> 2/3.
  EXPECT_NEAR(f_beta(0.5, 1.0, 1.0), 2.0 / 3.0, 1e-12);
}

TEST(PiiEval, CountsOnAHandMadeSet) {
  // Text 0: gold EMAIL 0..10, PHONE 20..30. Found: EMAIL 0..10 (exact), PHONE 21..30 (overlap only),
  //         URL 40..45 (no gold: false positive).
  // Text 1: gold EMAIL 5..15, EMAIL 30..40. Found: EMAIL 5..15, PHONE 30..40 (wrong type).
  // Text 2: gold PHONE 0..8 twice-covered: found PHONE 0..4 and 4..8 (one may match it, one is left over).
  const std::vector<std::vector<LabeledSpan>> gold = {
      {{"EMAIL", 0, 10}, {"PHONE", 20, 30}},
      {{"EMAIL", 5, 15}, {"EMAIL", 30, 40}},
      {{"PHONE", 0, 8}},
  };
  const std::vector<std::vector<LabeledSpan>> found = {
      {{"EMAIL", 0, 10}, {"PHONE", 21, 30}, {"URL", 40, 45}},
      {{"EMAIL", 5, 15}, {"PHONE", 30, 40}},
      {{"PHONE", 0, 4}, {"PHONE", 4, 8}},
  };
  const std::vector<std::string> types = {"EMAIL", "PHONE", "URL"};

  const auto exact = score_spans(gold, found, SpanMatch::exact, types);
  ASSERT_EQ(exact.size(), 4u);
  const auto& email = row(exact, "EMAIL");
  EXPECT_EQ(email.gold, 3);
  EXPECT_EQ(email.found, 2);
  EXPECT_EQ(email.tp, 2);
  EXPECT_EQ(email.fp, 0);
  EXPECT_EQ(email.fn, 1);
  EXPECT_DOUBLE_EQ(email.precision, 1.0);
  EXPECT_NEAR(email.recall, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(email.f2, 5.0 * (2.0 / 3.0) / (4.0 + 2.0 / 3.0), 1e-12);
  const auto& phone = row(exact, "PHONE");
  EXPECT_EQ(phone.tp, 0);
  EXPECT_EQ(phone.fp, 4);
  EXPECT_EQ(phone.fn, 2);
  EXPECT_EQ(phone.precision, 0.0);
  EXPECT_EQ(phone.f2, 0.0);
  const auto& url = row(exact, "URL");
  EXPECT_EQ(url.fp, 1);
  EXPECT_EQ(url.gold, 0);
  EXPECT_EQ(url.recall, 0.0);
  const auto& all = row(exact, "ALL");
  EXPECT_EQ(all.tp, 2);
  EXPECT_EQ(all.fp, 5);
  EXPECT_EQ(all.fn, 3);
  EXPECT_NEAR(all.precision, 2.0 / 7.0, 1e-12);
  EXPECT_NEAR(all.recall, 2.0 / 5.0, 1e-12);
  EXPECT_NEAR(all.f2, f_beta(2.0 / 7.0, 0.4, 2.0), 1e-12);

  const auto overlap = score_spans(gold, found, SpanMatch::overlap, types);
  const auto& phone_o = row(overlap, "PHONE");
  // 21..30 matches 20..30; one of 0..4 / 4..8 matches 0..8, the other stays a false positive;
  // the PHONE at 30..40 has no PHONE gold.
  EXPECT_EQ(phone_o.tp, 2);
  EXPECT_EQ(phone_o.fp, 2);
  EXPECT_EQ(phone_o.fn, 0);
  EXPECT_DOUBLE_EQ(phone_o.recall, 1.0);
  EXPECT_DOUBLE_EQ(phone_o.precision, 0.5);
  EXPECT_NEAR(phone_o.f2, 5.0 * 0.5 / (4.0 * 0.5 + 1.0), 1e-12);
  // Touching spans do not overlap.
  const auto touching = score_spans({{{"EMAIL", 0, 5}}}, {{{"EMAIL", 5, 9}}}, SpanMatch::overlap, {"EMAIL"});
  EXPECT_EQ(row(touching, "EMAIL").tp, 0);

  EXPECT_THROW(score_spans(gold, {}, SpanMatch::exact, types), Error);
}

TEST(PiiEval, CorpusReaderRejectsBadRecords) {
  EXPECT_EQ(read_pii_corpus("\n").size(), 0u);
  const auto ok = read_pii_corpus(R"({"id": "a", "text": "Zoë x@y.example", "entities": [{"type": "EMAIL", "start": 4, "end": 15}]})");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].spans[0].end, 15);
  EXPECT_THROW(read_pii_corpus(R"({"text": "abc", "entities": [{"type": "EMAIL", "start": 1, "end": 4}]})"), Error);
  EXPECT_THROW(read_pii_corpus(R"({"text": "abc", "entities": [{"type": "EMAIL", "start": 2, "end": 2}]})"), Error);
  EXPECT_THROW(read_pii_corpus("{\"text\": \"ok\", \"entities\": []}\nnot json"), Error);
  try {
    read_pii_corpus("{\"text\": \"ok\", \"entities\": []}\n{\"text\": 1}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

// The corpus holds what it says: spans inside the text with no surrounding whitespace, every rule
// type in four languages and four formats, card numbers and IBANs whose checksums pass, and
// look-alikes whose checksums fail.
TEST(PiiEval, CorpusIsConsistent) {
  const std::string data = read_all(corpus_path());
  const auto corpus = read_pii_corpus(data);
  ASSERT_GE(corpus.size(), 200u);
  std::map<std::string, int> per_type;
  std::set<std::string> langs, formats;
  int bad_luhn = 0, bad_iban = 0, bad_ssn = 0;
  size_t line = 0;
  std::istringstream lines(data);
  std::string text_line;
  while (std::getline(lines, text_line)) {
    const auto j = nlohmann::json::parse(text_line);
    const LabeledText& t = corpus[line++];
    langs.insert(j["lang"].get<std::string>());
    formats.insert(j["format"].get<std::string>());
    const std::vector<size_t> bytes = code_point_bytes(t.text);
    auto slice = [&](int64_t s, int64_t e) { return t.text.substr(bytes[size_t(s)], bytes[size_t(e)] - bytes[size_t(s)]); };
    auto compact = [](std::string s) {
      std::erase_if(s, [](char c) { return c == ' ' || c == '-'; });
      return s;
    };
    for (const auto& s : t.spans) {
      ++per_type[s.type];
      const std::string v = slice(s.start, s.end);
      ASSERT_FALSE(v.empty());
      EXPECT_NE(v.front(), ' ') << t.id;
      EXPECT_NE(v.back(), ' ') << t.id;
      if (s.type == "CREDIT_CARD") EXPECT_TRUE(luhn_valid(compact(v))) << t.id << " " << v;
      if (s.type == "IBAN") EXPECT_TRUE(iban_valid(compact(v))) << t.id << " " << v;
      if (s.type == "US_SSN") EXPECT_TRUE(us_ssn_valid(compact(v))) << t.id << " " << v;
    }
    for (const auto& n : j["negatives"]) {
      const std::string v = slice(n["start"], n["end"]);
      const std::string kind = n["kind"];
      if (kind == "card_bad_luhn") {
        ++bad_luhn;
        EXPECT_FALSE(luhn_valid(compact(v))) << t.id << " " << v;
      } else if (kind == "iban_bad_check") {
        ++bad_iban;
        EXPECT_FALSE(iban_valid(compact(v))) << t.id << " " << v;
      } else if (kind == "ssn_invalid") {
        ++bad_ssn;
        EXPECT_FALSE(us_ssn_valid(compact(v))) << t.id << " " << v;
      }
    }
  }
  for (const auto& type : rule_entity_types()) EXPECT_GE(per_type[type], 40) << type;
  EXPECT_EQ(langs, (std::set<std::string>{"en", "de", "fr", "es"}));
  EXPECT_EQ(formats, (std::set<std::string>{"text", "email", "csv", "json"}));
  EXPECT_GE(bad_luhn, 5);
  EXPECT_GE(bad_iban, 5);
  EXPECT_GE(bad_ssn, 5);
}

// `slm redact --eval` on the corpus, and the floor the rule detectors must keep.
TEST(PiiEval, RuleDetectorsKeepTheirFloorOnTheCorpus) {
  const std::string cmd = std::string(SLM_EXE) + " redact --eval " + corpus_path() + " --json 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  ASSERT_EQ(WEXITSTATUS(pclose(p)), 0) << out;
  const auto report = nlohmann::json::parse(out);
  const auto corpus = read_pii_corpus(read_all(corpus_path()));
  EXPECT_EQ(report["records"], corpus.size());

  // The command's counts agree with scoring the detectors here.
  std::vector<std::vector<LabeledSpan>> gold, found;
  for (const auto& t : corpus) {
    gold.push_back(t.spans);
    found.emplace_back();
    for (const auto& e : resolve_overlaps(detect_rules(t.text))) found.back().push_back({e.type, e.start, e.end});
  }
  const auto overlap = score_spans(gold, found, SpanMatch::overlap, rule_entity_types());
  for (const auto& s : overlap) {
    EXPECT_EQ(report["overlap"][s.type]["tp"], s.tp) << s.type;
    EXPECT_EQ(report["overlap"][s.type]["fp"], s.fp) << s.type;
    EXPECT_EQ(report["overlap"][s.type]["fn"], s.fn) << s.type;
  }

  // Floors: 0.98 precision and recall for every type, exact and overlapping spans. The rule
  // detectors reach 1.0 on this corpus today; that is partly by construction, since the corpus was
  // used to find what they missed (dotted dates, German, French and Spanish month names, URLs
  // running past a CSV comma, "+33 6 ..." numbers) and what they took wrongly (SSN-shaped and
  // dotted-quad look-alikes and digit groups inside invalid IBANs and ISBNs as phone or card
  // numbers). The floor leaves room for a few records of a regenerated corpus and none for a
  // regression of a whole format: one lost format costs at least 2-3 % of its type.
  const std::map<std::string, std::pair<double, double>> floor = {
      // type: {min precision, min recall}
      {"EMAIL", {0.98, 0.98}},  {"CREDIT_CARD", {0.98, 0.98}}, {"IBAN", {0.98, 0.98}}, {"US_SSN", {0.98, 0.98}},
      {"IP_ADDRESS", {0.98, 0.98}}, {"URL", {0.98, 0.98}},     {"PHONE", {0.98, 0.98}}, {"DATE_TIME", {0.98, 0.98}},
  };
  for (const auto& [type, pr] : floor) {
    for (const char* match : {"exact", "overlap"}) {
      const auto& s = report[match][type];
      EXPECT_GE(s["precision"].get<double>(), pr.first) << match << " " << type << " " << s;
      EXPECT_GE(s["recall"].get<double>(), pr.second) << match << " " << type << " " << s;
    }
  }
  EXPECT_GE(report["overlap"]["ALL"]["f2"].get<double>(), 0.98) << report["overlap"]["ALL"];
  EXPECT_GE(report["exact"]["ALL"]["f2"].get<double>(), 0.98) << report["exact"]["ALL"];
}

}  // namespace
}  // namespace slm::tasks
