#include "slm/tasks/pii_eval.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "slm/tasks/pii.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {

double ratio(int64_t a, int64_t b) { return b == 0 ? 0.0 : double(a) / double(b); }

void finish(TypeScore& s) {
  s.precision = ratio(s.tp, s.tp + s.fp);
  s.recall = ratio(s.tp, s.tp + s.fn);
  s.f2 = f_beta(s.precision, s.recall, 2.0);
}

// Matches within one text and one type; returns the number of matched pairs.
int64_t match_count(std::vector<LabeledSpan> gold, const std::vector<LabeledSpan>& found, SpanMatch match) {
  std::sort(gold.begin(), gold.end(), [](const LabeledSpan& a, const LabeledSpan& b) {
    return a.start != b.start ? a.start < b.start : a.end < b.end;
  });
  std::vector<bool> used(found.size(), false);
  int64_t matched = 0;
  for (const auto& g : gold) {
    size_t best = found.size();
    int64_t best_overlap = 0;
    for (size_t i = 0; i < found.size(); ++i) {
      if (used[i]) continue;
      const auto& f = found[i];
      if (match == SpanMatch::exact) {
        if (f.start == g.start && f.end == g.end) {
          best = i;
          break;
        }
      } else {
        const int64_t overlap = std::min(f.end, g.end) - std::max(f.start, g.start);
        if (overlap > best_overlap) {
          best_overlap = overlap;
          best = i;
        }
      }
    }
    if (best < found.size()) {
      used[best] = true;
      ++matched;
    }
  }
  return matched;
}

}  // namespace

double f_beta(double precision, double recall, double beta) {
  const double b2 = beta * beta;
  const double denominator = b2 * precision + recall;
  return denominator <= 0.0 ? 0.0 : (1.0 + b2) * precision * recall / denominator;
}

std::vector<LabeledText> read_pii_corpus(std::string_view jsonl) {
  std::vector<LabeledText> out;
  size_t line_no = 0, pos = 0;
  while (pos < jsonl.size()) {
    size_t eol = jsonl.find('\n', pos);
    if (eol == std::string_view::npos) eol = jsonl.size();
    const std::string_view line = jsonl.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string() || !j.contains("entities") || !j["entities"].is_array()) {
      fail(ErrorKind::format, "line {}: expected an object with a string \"text\" and an \"entities\" array", line_no);
    }
    LabeledText t;
    t.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : fmt::format("line {}", line_no);
    t.text = j["text"].get<std::string>();
    std::vector<size_t> bytes;
    try {
      bytes = code_point_bytes(t.text);
    } catch (const Error&) {
      fail(ErrorKind::format, "line {}: expected UTF-8 text, found invalid bytes", line_no);
    }
    const int64_t length = int64_t(bytes.size()) - 1;
    for (const auto& e : j["entities"]) {
      if (!e.is_object() || !e.contains("type") || !e["type"].is_string() || !e.contains("start") ||
          !e["start"].is_number_integer() || !e.contains("end") || !e["end"].is_number_integer()) {
        fail(ErrorKind::format, "line {}: expected entities of {{\"type\": string, \"start\": int, \"end\": int}}", line_no);
      }
      LabeledSpan s{e["type"].get<std::string>(), e["start"].get<int64_t>(), e["end"].get<int64_t>()};
      if (s.start < 0 || s.start >= s.end || s.end > length) {
        fail(ErrorKind::format, "line {}: expected 0 <= start < end <= {}, found {}..{}", line_no, length, s.start, s.end);
      }
      t.spans.push_back(std::move(s));
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<TypeScore> score_spans(const std::vector<std::vector<LabeledSpan>>& gold,
                                   const std::vector<std::vector<LabeledSpan>>& found, SpanMatch match,
                                   const std::vector<std::string>& types) {
  if (gold.size() != found.size()) {
    fail(ErrorKind::invalid_argument, "expected as many found lists as texts ({}), found {}", gold.size(), found.size());
  }
  std::vector<TypeScore> out;
  TypeScore all;
  all.type = "ALL";
  for (const auto& type : types) {
    TypeScore s;
    s.type = type;
    for (size_t i = 0; i < gold.size(); ++i) {
      std::vector<LabeledSpan> g, f;
      for (const auto& x : gold[i]) {
        if (x.type == type) g.push_back(x);
      }
      for (const auto& x : found[i]) {
        if (x.type == type) f.push_back(x);
      }
      const int64_t m = match_count(g, f, match);
      s.gold += int64_t(g.size());
      s.found += int64_t(f.size());
      s.tp += m;
      s.fp += int64_t(f.size()) - m;
      s.fn += int64_t(g.size()) - m;
    }
    finish(s);
    all.gold += s.gold;
    all.found += s.found;
    all.tp += s.tp;
    all.fp += s.fp;
    all.fn += s.fn;
    out.push_back(std::move(s));
  }
  finish(all);
  out.push_back(std::move(all));
  return out;
}

nlohmann::ordered_json pii_report_json(size_t records, const std::vector<TypeScore>& exact, const std::vector<TypeScore>& overlap) {
  auto table = [](const std::vector<TypeScore>& scores) {
    nlohmann::ordered_json t = nlohmann::ordered_json::object();
    for (const auto& s : scores) {
      t[s.type] = {{"gold", s.gold}, {"found", s.found}, {"tp", s.tp}, {"fp", s.fp}, {"fn", s.fn},
                   {"precision", s.precision}, {"recall", s.recall}, {"f2", s.f2}};
    }
    return t;
  };
  return {{"records", records}, {"exact", table(exact)}, {"overlap", table(overlap)}};
}

std::string pii_report_text(size_t records, const std::vector<TypeScore>& exact, const std::vector<TypeScore>& overlap) {
  std::string out = fmt::format("{} records\n{:<12} {:>5} {:>5}   {:>6} {:>6} {:>6}   {:>6} {:>6} {:>6}\n", records, "type", "gold",
                                "found", "P", "R", "F2", "P~", "R~", "F2~");
  for (size_t i = 0; i < exact.size() && i < overlap.size(); ++i) {
    const auto& e = exact[i];
    const auto& o = overlap[i];
    out += fmt::format("{:<12} {:>5} {:>5}   {:>6.3f} {:>6.3f} {:>6.3f}   {:>6.3f} {:>6.3f} {:>6.3f}\n", e.type, e.gold, e.found,
                       e.precision, e.recall, e.f2, o.precision, o.recall, o.f2);
  }
  out += "P R F2: exact spans; P~ R~ F2~: overlapping spans of the same type\n";
  return out;
}

}  // namespace slm::tasks
