#include "slm/eval/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <sstream>

#include "slm/util/error.hpp"

namespace slm::eval {
namespace {

std::string strip(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::regex compile(const std::string& pattern) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail(ErrorKind::invalid_argument, "expected a valid regular expression, found '{}' ({})", pattern, e.what());
  }
}

std::string lower_ascii(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_python_punctuation(char c) {
  static const std::string punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  return punct.find(c) != std::string::npos;
}

}  // namespace

std::string regex_extract(const std::string& text, const std::string& pattern, int group_select,
                          const std::string& fallback) {
  const std::regex re = compile(pattern);
  std::vector<std::smatch> matches;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    matches.push_back(*it);
  }
  if (matches.empty()) return fallback;
  const int64_t n = int64_t(matches.size());
  const int64_t index = group_select < 0 ? n + group_select : group_select;
  if (index < 0 || index >= n) return fallback;  // Python would raise IndexError; treat as no answer
  const std::smatch& m = matches[size_t(index)];
  if (m.size() <= 1) return strip(m.str(0));
  if (m.size() == 2) return strip(m.str(1));  // findall with one group: that group, even if empty
  for (size_t g = 1; g < m.size(); ++g) {
    if (m[g].matched && m[g].length() > 0) return strip(m.str(g));
  }
  return fallback;
}

double exact_match(const std::string& prediction, const std::string& reference, const ExactMatchOptions& options) {
  std::string p = prediction, r = reference;
  for (const auto& pattern : options.regexes_to_ignore) {
    const std::regex re = compile(pattern);
    p = std::regex_replace(p, re, "");
    r = std::regex_replace(r, re, "");
  }
  if (options.ignore_case) {
    p = lower_ascii(p);
    r = lower_ascii(r);
  }
  if (options.ignore_punctuation) {
    std::erase_if(p, is_python_punctuation);
    std::erase_if(r, is_python_punctuation);
  }
  return p == r ? 1.0 : 0.0;
}

ExactMatchOptions gsm8k_match_options() {
  ExactMatchOptions o;
  // lm-eval: ",", "\$", "(?s).*#### ", "\.$"  ((?s). written as [\s\S] for ECMAScript)
  o.regexes_to_ignore = {",", "\\$", "[\\s\\S]*#### ", "\\.$"};
  o.ignore_case = true;
  o.ignore_punctuation = false;
  return o;
}

std::string gsm8k_strict_extract(const std::string& response) {
  return regex_extract(response, "#### (-?[0-9.,]+)", 0);
}

std::string gsm8k_cot_strict_extract(const std::string& response) {
  return regex_extract(response, "The answer is (-?[0-9.,]+).", 0);
}

std::string gsm8k_flexible_extract(const std::string& response) {
  return regex_extract(response, "(-?[$0-9.,]{2,})|(-?[0-9]+)", -1);
}

std::string gsm8k_final_answer(const std::string& answer) {
  const size_t pos = answer.rfind("####");
  return strip(pos == std::string::npos ? answer : answer.substr(pos + 4));
}

std::string mmlu_pro_extract(const std::string& response) {
  return regex_extract(response, "answer is \\(?([ABCDEFGHIJ])\\)?", 0);
}

ExactMatchOptions mmlu_pro_match_options() {
  ExactMatchOptions o;
  o.ignore_case = true;
  o.ignore_punctuation = true;
  return o;
}

size_t argmax_first(const std::vector<double>& values) {
  if (values.empty()) fail(ErrorKind::invalid_argument, "expected at least one choice, found none");
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = i;
  }
  return best;
}

size_t utf8_length(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

MeanStderr mean_stderr(const std::vector<double>& values) {
  MeanStderr out;
  if (values.empty()) return out;
  double sum = 0;
  for (double v : values) sum += v;
  out.mean = sum / double(values.size());
  if (values.size() >= 2) {
    double ss = 0;
    for (double v : values) ss += (v - out.mean) * (v - out.mean);
    const double sd = std::sqrt(ss / double(values.size() - 1));
    out.stderr_ = sd / std::sqrt(double(values.size()));
  }
  return out;
}

CustomMetric CustomMetric::from_json(const nlohmann::json& spec) {
  CustomMetric m;
  if (spec.is_string()) {
    m.kind = spec.get<std::string>();
  } else if (spec.is_object()) {
    m.kind = spec.value("type", std::string("exact_match"));
    m.ignore_case = spec.value("ignore_case", false);
    m.tolerance = spec.value("tolerance", 1e-6);
    m.rel_tolerance = spec.value("rel_tolerance", 0.0);
    m.field = spec.value("field", std::string());
    if (spec.contains("labels")) m.labels = spec.at("labels").get<std::vector<std::string>>();
    m.rubric = spec.value("rubric", std::string());
    if (spec.contains("scale")) {
      const auto& sc = spec.at("scale");
      if (!sc.is_array() || sc.size() != 2 || !sc[0].is_number() || !sc[1].is_number() || sc[0] >= sc[1]) {
        fail(ErrorKind::invalid_argument, "expected \"scale\": [min, max] with min < max, found {}", sc.dump());
      }
      m.scale_min = sc[0].get<double>();
      m.scale_max = sc[1].get<double>();
    }
  } else if (!spec.is_null()) {
    fail(ErrorKind::invalid_argument, "expected a metric name or object, found {}", spec.dump());
  }
  static const std::vector<std::string> kinds = {"exact_match", "regex", "numeric", "json_field", "label", "judge"};
  if (std::find(kinds.begin(), kinds.end(), m.kind) == kinds.end()) {
    fail(ErrorKind::invalid_argument, "expected metric exact_match, regex, numeric, json_field, label or judge, found '{}'",
         m.kind);
  }
  if (m.kind == "json_field" && m.field.empty()) {
    fail(ErrorKind::invalid_argument, "metric json_field needs \"field\"");
  }
  return m;
}

namespace {
const char* kDefaultRubric =
    "You are grading an answer to a task. Compare it with the reference answer and rate it on a scale of {min} "
    "to {max}: {max} means fully correct and complete, {min} means wrong or missing.\n\n"
    "Task:\n{input}\n\nReference answer:\n{expected}\n\nAnswer to grade:\n{output}\n\n"
    "Reply with the score only, as \"Score: N\".\nScore:";

std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(int64_t(v));
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

std::string judge_prompt(const CustomMetric& metric, const std::string& input, const std::string& output,
                         const std::string& expected) {
  const std::string rubric = metric.rubric.empty() ? kDefaultRubric : metric.rubric;
  const std::pair<std::string, std::string> fields[] = {
      {"{input}", input}, {"{output}", output}, {"{expected}", expected},
      {"{min}", number_text(metric.scale_min)}, {"{max}", number_text(metric.scale_max)}};
  // One left-to-right pass: text filled in is never searched for placeholders again.
  std::string out;
  for (size_t i = 0; i < rubric.size();) {
    bool replaced = false;
    for (const auto& [name, value] : fields) {
      if (rubric.compare(i, name.size(), name) == 0) {
        out += value;
        i += name.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += rubric[i++];
  }
  return out;
}

std::optional<double> parse_judge_score(const std::string& answer, double min, double max) {
  static const std::regex after_score("[Ss][Cc][Oo][Rr][Ee]\\**\\s*[:=]?\\s*\\**\\s*(-?[0-9]+(\\.[0-9]+)?)");
  static const std::regex any_number("-?[0-9]+(\\.[0-9]+)?");
  std::smatch m;
  std::string text;
  if (std::regex_search(answer, m, after_score)) {
    text = m.str(1);
  } else if (std::regex_search(answer, m, any_number)) {
    text = m.str(0);
  } else {
    return std::nullopt;
  }
  const double v = std::strtod(text.c_str(), nullptr);
  if (!(v >= min && v <= max)) return std::nullopt;
  return v;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) {
    fail(ErrorKind::invalid_argument, "pass@k: expected 0 <= c <= n and 1 <= k <= n, found n={} c={} k={}", n, c, k);
  }
  if (n - c < k) return 1.0;
  double prod = 1.0;  // C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i)
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - double(k) / double(i);
  return 1.0 - prod;
}

std::optional<nlohmann::json> first_json_value(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '{' && text[i] != '[') continue;
    // Try the longest balanced span starting here.
    int depth = 0;
    bool in_string = false, escape = false;
    for (size_t j = i; j < text.size(); ++j) {
      const char c = text[j];
      if (in_string) {
        if (escape) escape = false;
        else if (c == '\\') escape = true;
        else if (c == '"') in_string = false;
        continue;
      }
      if (c == '"') in_string = true;
      else if (c == '{' || c == '[') ++depth;
      else if (c == '}' || c == ']') {
        if (--depth == 0) {
          auto parsed = nlohmann::json::parse(text.begin() + std::ptrdiff_t(i), text.begin() + std::ptrdiff_t(j + 1),
                                              nullptr, false);
          if (!parsed.is_discarded()) return parsed;
          break;
        }
      }
    }
  }
  return std::nullopt;
}

namespace {
std::optional<double> parse_number(std::string s) {
  std::erase(s, ',');
  std::erase(s, '$');
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return std::nullopt;
  return v;
}
std::string expected_text(const nlohmann::json& expected) {
  return expected.is_string() ? expected.get<std::string>() : expected.dump();
}
}  // namespace

CustomScore custom_score(const CustomMetric& metric, const std::string& output, const nlohmann::json& expected) {
  CustomScore out;
  if (metric.kind == "exact_match") {
    out.extracted = strip(output);
    std::string e = strip(expected_text(expected));
    std::string o = out.extracted;
    if (metric.ignore_case) {
      o = lower_ascii(o);
      e = lower_ascii(e);
    }
    out.score = o == e ? 1 : 0;
  } else if (metric.kind == "regex") {
    const std::regex re = compile(expected_text(expected));
    std::smatch m;
    if (std::regex_search(output, m, re)) {
      out.extracted = m.str(0);
      out.score = 1;
    }
  } else if (metric.kind == "numeric") {
    out.extracted = regex_extract(output, "(-?[$0-9.,]{2,})|(-?[0-9]+)", -1, "");
    const auto got = parse_number(out.extracted);
    const auto want = expected.is_number() ? std::optional<double>(expected.get<double>()) : parse_number(expected_text(expected));
    if (!want) fail(ErrorKind::invalid_argument, "numeric metric: expected a number as the answer, found {}", expected.dump());
    if (got) {
      const double diff = std::fabs(*got - *want);
      out.score = (diff <= metric.tolerance || diff <= metric.rel_tolerance * std::fabs(*want)) ? 1 : 0;
    }
  } else if (metric.kind == "json_field") {
    const auto value = first_json_value(output);
    if (value && value->is_object() && value->contains(metric.field)) {
      const auto& got = value->at(metric.field);
      out.extracted = got.dump();
      out.score = got == expected ? 1 : 0;
    }
  } else if (metric.kind == "label") {
    const std::string o = lower_ascii(output);
    size_t best_pos = std::string::npos;
    for (const auto& label : metric.labels) {
      const size_t pos = o.find(lower_ascii(label));
      if (pos != std::string::npos && (best_pos == std::string::npos || pos < best_pos)) {
        best_pos = pos;
        out.extracted = label;
      }
    }
    if (metric.labels.empty()) out.extracted = strip(output);
    out.score = lower_ascii(out.extracted) == lower_ascii(strip(expected_text(expected))) ? 1 : 0;
  }
  return out;
}

}  // namespace slm::eval
