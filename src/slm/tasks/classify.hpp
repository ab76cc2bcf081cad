// One label per text: greedy decoding constrained to the label set (each label spelled by the
// tokens the tokenizer gives " label", so decoding and scoring follow the same paths), and a
// probability per label from the logits (the sum of the log-probabilities of the label's tokens after the prompt,
// normalised over the labels with a softmax).
#pragma once

#include <string>
#include <vector>

#include "slm/engine/scheduler.hpp"

namespace slm::tasks {

struct ClassifyOptions {
  std::vector<std::string> labels;  // at least two, distinct, none empty
  // "{text}" and "{labels}" (comma-separated) are filled in; the label follows the prompt after a space.
  std::string prompt_template = "Classify the text as one of: {labels}.\n\nText: {text}\nLabel:";
  bool chat = false;    // wrap the prompt in the model's chat template
  bool decode = true;   // also run the constrained decoding (ClassifyResult::decoded)
};

struct ClassifyResult {
  std::string label;           // the most probable label (whole-label probabilities below)
  std::string decoded;         // greedy decoding constrained to the labels (empty without decode);
                               // can differ from `label` for multi-token labels: greedy commits to
                               // the first token
  std::vector<double> probs;   // per label, in the order of ClassifyOptions::labels; sums to 1
  std::vector<double> logprobs;  // unnormalised: sum of the label tokens' log-probabilities
};

class Classifier {
 public:
  // Throws Error(invalid_argument) for fewer than two labels, empty or repeated labels.
  Classifier(Scheduler& scheduler, ClassifyOptions options);
  // Results in the order of `texts`; the requests of several texts run in one batch.
  std::vector<ClassifyResult> classify(const std::vector<std::string>& texts);
  const ClassifyOptions& options() const { return options_; }

 private:
  Scheduler& scheduler_;
  ClassifyOptions options_;
  std::vector<std::vector<int32_t>> label_tokens_;  // " label" as tokens
};

}  // namespace slm::tasks
