// classify and extract on the demo model: probabilities checked against a direct forward, outputs
// checked against their schemas.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "slm/backend/cpu/ops.hpp"
#include "slm/engine/grammar/json_schema.hpp"
#include "slm/engine/session.hpp"
#include "slm/tasks/classify.hpp"
#include "slm/tasks/extract.hpp"
#include "slm/tasks/llm.hpp"
#include "slm/tasks/ner.hpp"
#include "slm/util/error.hpp"
#include "../common/models.hpp"

namespace fs = std::filesystem;
using namespace slm;

namespace {
using slm_test::demo_model;

SchedulerOptions small_options() {
  SchedulerOptions so;
  so.max_sequences = 4;
  so.n_ctx = 2048;  // the extraction prompt holds the schema
  so.max_queue = 64;
  return so;
}

// Sum of log p(label tokens | prompt) from one plain forward over prompt + label.
double direct_label_logprob(const std::shared_ptr<const Model>& model, std::vector<int32_t> ids, const std::vector<int32_t>& label) {
  const size_t p = ids.size();
  ids.insert(ids.end(), label.begin(), label.end());
  const int64_t vocab = model->config().vocab_size;
  SessionOptions so;
  so.n_ctx = int64_t(ids.size());
  Session session(model, so);
  std::vector<float> logits(ids.size() * size_t(vocab));
  std::vector<float> row(static_cast<size_t>(vocab));
  session.forward(ids, logits.data(), true);
  double sum = 0.0;
  for (size_t t = p; t < ids.size(); ++t) {
    cpu::log_softmax(logits.data() + (t - 1) * size_t(vocab), row.data(), vocab);
    sum += row[size_t(ids[t])];
  }
  return sum;
}
}  // namespace

TEST(FillTemplate, ReplacesNamedSlotsOnly) {
  EXPECT_EQ(tasks::fill_template("a {text} b {x} {labels}{text}", {{"text", "T"}, {"labels", "L"}}), "a T b {x} LT");
  // A value holding a slot name is not filled again.
  EXPECT_EQ(tasks::fill_template("{text}", {{"text", "{labels}"}, {"labels", "no"}}), "{labels}");
}

TEST(Classify, ProbabilitiesMatchADirectForward) {
  auto model = demo_model();
  Scheduler scheduler(model, small_options());
  tasks::ClassifyOptions options;
  options.labels = {"happy", "sad", "angry letter"};
  tasks::Classifier classifier(scheduler, options);
  const std::vector<std::string> texts = {"She smiled and laughed all evening.", "He wept at the grave of his father.",
                                          "How dare you write to me in such a manner, sir!"};
  const auto results = classifier.classify(texts);
  ASSERT_EQ(results.size(), texts.size());
  const Tokenizer& tok = *model->tokenizer();
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& r = results[i];
    ASSERT_EQ(r.probs.size(), 3u);
    EXPECT_NEAR(std::accumulate(r.probs.begin(), r.probs.end(), 0.0), 1.0, 1e-9);
    EXPECT_NE(std::find(options.labels.begin(), options.labels.end(), r.label), options.labels.end());
    EXPECT_NE(std::find(options.labels.begin(), options.labels.end(), r.decoded), options.labels.end());
    EXPECT_EQ(r.label, options.labels[size_t(std::max_element(r.probs.begin(), r.probs.end()) - r.probs.begin())]);
    const auto prompt = tasks::encode_prompt(
        *model, tasks::fill_template(options.prompt_template, {{"text", texts[i]}, {"labels", "happy, sad, angry letter"}}), false);
    for (size_t l = 0; l < 3; ++l) {
      const double direct = direct_label_logprob(model, prompt, tok.encode(" " + options.labels[l], false, false));
      EXPECT_NEAR(r.logprobs[l], direct, 0.05 + 0.01 * std::fabs(direct)) << texts[i] << " / " << options.labels[l];
    }
  }
}

TEST(Classify, ArgmaxWithoutDecodingAndBadLabels) {
  auto model = demo_model();
  Scheduler scheduler(model, small_options());
  tasks::ClassifyOptions options;
  options.labels = {"yes", "no"};
  options.decode = false;
  tasks::Classifier classifier(scheduler, options);
  const auto r = classifier.classify({"Is it not a truth universally acknowledged?"}).front();
  EXPECT_EQ(r.label, r.probs[0] >= r.probs[1] ? "yes" : "no");
  options.labels = {"only"};
  EXPECT_THROW(tasks::Classifier(scheduler, options), Error);
  options.labels = {"a", "a"};
  EXPECT_THROW(tasks::Classifier(scheduler, options), Error);
  options.labels = {"a", ""};
  EXPECT_THROW(tasks::Classifier(scheduler, options), Error);
}

TEST(Extract, EveryOutputValidates) {
  auto model = demo_model();
  Scheduler scheduler(model, small_options());
  const char* schema_text = R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 24},
      "age": {"type": "integer", "minimum": 0, "maximum": 120},
      "mood": {"enum": ["calm", "angry", "sad", "joyful"]},
      "married": {"type": "boolean"},
      "address": {"type": "object",
                  "properties": {"town": {"type": "string", "maxLength": 20}, "county": {"type": "string", "maxLength": 20}},
                  "required": ["town"], "additionalProperties": false},
      "children": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 16}}
    },
    "required": ["name", "age", "mood", "address", "children"],
    "additionalProperties": false
  })";
  tasks::ExtractOptions options;
  options.schema = nlohmann::ordered_json::parse(schema_text);
  options.prompt_template = "{text}\nJSON: ";  // the demo model's context is short: no schema text
  options.max_tokens = 400;  // room for the longest strings the schema allows, in practice
  tasks::Extractor extractor(scheduler, options);
  const std::vector<std::string> texts = {
      "Mrs. Bennet, aged forty-five, of Longbourn in Hertfordshire, had five daughters.",
      "Captain Ahab, an old man of Nantucket, was angry at the white whale.",
      "Elinor Dashwood was calm; she lived at Barton Cottage in Devonshire.",
      "Mr. Knightley, thirty-seven, lived at Donwell Abbey near Highbury.",
      "Ishmael went to sea from Manhattan; he was twenty and unmarried.",
      "Anne Elliot, twenty-seven, of Kellynch Hall in Somerset, was sad.",
      "Noah was six hundred years old when the flood came.",
      "Fanny Price, eighteen, joyful, came to Mansfield Park in Northamptonshire.",
      "Catherine Morland was seventeen and went to Bath.",
      "Queequeg, a harpooner from Kokovoko, was calm and married to none.",
  };
  const auto results = extractor.extract(texts);
  ASSERT_EQ(results.size(), texts.size());
  const nlohmann::json plain = nlohmann::json::parse(schema_text);
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].value.has_value())
        << texts[i] << ": " << nlohmann::json(results[i].raw).dump() << " | "
        << (results[i].errors.empty() ? "" : results[i].errors.front()) << " after " << results[i].attempts
        << " attempts, " << results[i].tokens << " tokens";
    EXPECT_TRUE(grammar::validate_json(plain, *results[i].value).empty()) << results[i].raw;
    // The raw text is the JSON itself, with the schema's member order.
    const auto ordered = nlohmann::ordered_json::parse(results[i].raw);
    EXPECT_EQ(ordered.begin().key(), "name");
  }
}

TEST(Extract, UnsupportedSchemaIsAnError) {
  auto model = demo_model();
  Scheduler scheduler(model, small_options());
  tasks::ExtractOptions options;
  options.schema = nlohmann::ordered_json::parse(R"({"type": "object", "patternProperties": {"a": {}}})");
  EXPECT_THROW(tasks::Extractor(scheduler, options), Error);
}

TEST(Ner, WordSpansAndModelFindingsComeFromTheText) {
  const std::string text = "Ännchen met Ann at Annecy; Ann left.";
  const auto spans = tasks::find_word_spans(text, "Ann");
  ASSERT_EQ(spans.size(), 2u);  // not inside "Ännchen" or "Annecy"
  EXPECT_EQ(spans[0], (std::pair<int64_t, int64_t>{12, 15}));
  EXPECT_EQ(spans[1], (std::pair<int64_t, int64_t>{27, 30}));
  auto model = demo_model();
  Scheduler scheduler(model, small_options());
  const std::string story = "Elizabeth Bennet walked from Longbourn to Netherfield to see Jane.";
  const auto found = tasks::detect_model(scheduler, story);
  const auto cps = tasks::code_point_bytes(story);
  for (const auto& e : found) {
    EXPECT_EQ(e.source, "model");
    ASSERT_LT(e.start, e.end);
    ASSERT_LE(size_t(e.end), cps.size() - 1);
    EXPECT_NE(std::find(tasks::model_entity_types().begin(), tasks::model_entity_types().end(), e.type),
              tasks::model_entity_types().end());
  }
  EXPECT_THROW(tasks::detect_model(scheduler, story, {"EMAIL"}), Error);
}

TEST(Classify, DecodingFollowsTheScoredTokenPaths) {
  // With one-token labels, greedy decoding over the labels' own tokens must pick the most probable label.
  auto model = demo_model();
  const Tokenizer& tok = *model->tokenizer();
  std::vector<std::string> labels;
  for (const char* w : {"the", "and", "of", "to", "was", "her", "it", "he"}) {
    if (tok.encode(std::string(" ") + w, false, false).size() == 1) labels.push_back(w);
  }
  ASSERT_GE(labels.size(), 3u);
  Scheduler scheduler(model, small_options());
  tasks::ClassifyOptions options;
  options.labels = labels;
  options.prompt_template = "{text}";
  tasks::Classifier classifier(scheduler, options);
  const std::vector<std::string> texts = {"It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. However little known",
                                          "Call me Ishmael. Some years ago--never mind how long precisely--having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part",
                                          "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face"};
  for (const auto& r : classifier.classify(texts)) {
    const size_t best = size_t(std::max_element(r.probs.begin(), r.probs.end()) - r.probs.begin());
    EXPECT_EQ(r.label, labels[best]);
    EXPECT_EQ(r.decoded, labels[best]);
  }
}
