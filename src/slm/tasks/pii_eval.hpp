// Scoring PII detection against a labelled corpus: precision, recall and F2 per entity type, with
// spans matched exactly (same type, start and end) or by overlap (same type, intersecting spans).
// The corpus is JSONL, one record per line: {"id", "text", "entities": [{"type", "start", "end"}]}
// with offsets in code points of "text" (tests/data/pii/corpus.jsonl, made by
// tools/make_pii_corpus.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace slm::tasks {

struct LabeledSpan {
  std::string type;
  int64_t start = 0, end = 0;  // code points, end exclusive
};

struct LabeledText {
  std::string id;
  std::string text;
  std::vector<LabeledSpan> spans;
};

// Throws Error(format) naming the line for a record that is not an object with a string "text" and
// an "entities" array of {type, start, end} with 0 <= start < end <= the text's length.
std::vector<LabeledText> read_pii_corpus(std::string_view jsonl);

enum class SpanMatch { exact, overlap };

struct TypeScore {
  std::string type;  // "ALL" for the micro average
  int64_t gold = 0, found = 0;
  int64_t tp = 0, fp = 0, fn = 0;
  double precision = 0.0, recall = 0.0, f2 = 0.0;  // 0 where the denominator is 0
};

// F-beta from precision and recall (0 when both are 0).
double f_beta(double precision, double recall, double beta);

// Scores per type over the given types (in that order), then the micro average over them ("ALL").
// Spans of other types are ignored on both sides. Every gold span and every found span is matched at
// most once: exact by equal offsets, overlap to the same-type span it shares the most code points
// with (gold spans taken in order of start).
std::vector<TypeScore> score_spans(const std::vector<std::vector<LabeledSpan>>& gold,
                                   const std::vector<std::vector<LabeledSpan>>& found, SpanMatch match,
                                   const std::vector<std::string>& types);

// Both tables as JSON: {"records", "exact": {TYPE: {gold, found, tp, fp, fn, precision, recall, f2}, ..., "ALL": ...}, "overlap": {...}}.
nlohmann::ordered_json pii_report_json(size_t records, const std::vector<TypeScore>& exact,
                                       const std::vector<TypeScore>& overlap);
// The same as a text table.
std::string pii_report_text(size_t records, const std::vector<TypeScore>& exact, const std::vector<TypeScore>& overlap);

}  // namespace slm::tasks
