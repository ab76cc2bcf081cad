#include "slm/tasks/classify.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/tasks/llm.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {

Classifier::Classifier(Scheduler& scheduler, ClassifyOptions options)
    : scheduler_(scheduler), options_(std::move(options)) {
  if (options_.labels.size() < 2) {
    fail(ErrorKind::invalid_argument, "expected at least two labels, found {}", options_.labels.size());
  }
  std::set<std::string> seen;
  const Tokenizer* tok = scheduler_.model().tokenizer();
  if (!tok) fail(ErrorKind::invalid_argument, "classify needs a model with a tokenizer");
  for (const auto& l : options_.labels) {
    if (l.empty()) fail(ErrorKind::invalid_argument, "expected non-empty labels, found an empty one");
    if (!seen.insert(l).second) fail(ErrorKind::invalid_argument, "expected distinct labels, found '{}' twice", l);
    label_tokens_.push_back(tok->encode(" " + l, false, false));
    if (label_tokens_.back().empty()) fail(ErrorKind::invalid_argument, "label '{}' has no tokens", l);
  }
}

std::vector<ClassifyResult> Classifier::classify(const std::vector<std::string>& texts) {
  const Model& model = scheduler_.model();
  const Tokenizer& tok = *model.tokenizer();
  std::string joined;
  for (const auto& l : options_.labels) joined += (joined.empty() ? "" : ", ") + l;
  std::vector<std::string> choices;
  for (const auto& l : options_.labels) choices.push_back(" " + l);
  std::shared_ptr<TokenConstraint> constraint;
  if (options_.decode) constraint = grammar::choice_constraint(choices, tok);

  const size_t k = options_.labels.size();
  const size_t per_text = k + (options_.decode ? 1 : 0);
  const size_t batch = std::max<size_t>(1, size_t(scheduler_.options().max_queue) / per_text);
  std::vector<ClassifyResult> results(texts.size());
  for (size_t begin = 0; begin < texts.size(); begin += batch) {
    const size_t end = std::min(texts.size(), begin + batch);
    std::vector<std::vector<std::future<Completion>>> scores(end - begin);
    std::vector<std::future<Completion>> decodes(end - begin);
    for (size_t i = begin; i < end; ++i) {
      const std::string prompt_text = fill_template(options_.prompt_template, {{"text", texts[i]}, {"labels", joined}});
      const std::vector<int32_t> prompt = encode_prompt(model, prompt_text, options_.chat);
      for (size_t l = 0; l < k; ++l) {
        GenerationRequest req;
        req.prompt = prompt;
        req.prompt.insert(req.prompt.end(), label_tokens_[l].begin(), label_tokens_[l].end());
        req.prompt_logprobs = true;
        req.max_tokens = 1;
        req.sampling.temperature = 0.0f;
        scores[i - begin].push_back(submit_collect(scheduler_, std::move(req)));
      }
      if (options_.decode) {
        GenerationRequest req;
        req.prompt = prompt;
        req.max_tokens = 64;
        for (const auto& lt : label_tokens_) req.max_tokens = std::max<int64_t>(req.max_tokens, int64_t(lt.size()) * 4 + 8);
        req.sampling.temperature = 0.0f;
        req.constraint = constraint->clone_initial();
        decodes[i - begin] = submit_collect(scheduler_, std::move(req));
      }
    }
    for (size_t i = begin; i < end; ++i) {
      ClassifyResult& r = results[i];
      for (size_t l = 0; l < k; ++l) {
        Completion c = scores[i - begin][l].get();
        if (c.finish == FinishReason::error) fail(ErrorKind::internal, "scoring label '{}' failed: {}", options_.labels[l], c.error);
        const size_t n = label_tokens_[l].size();
        if (c.prompt_logprobs.size() < n) {
          fail(ErrorKind::internal, "expected {} prompt logprobs, found {}", n, c.prompt_logprobs.size());
        }
        double sum = 0.0;
        for (size_t t = c.prompt_logprobs.size() - n; t < c.prompt_logprobs.size(); ++t) sum += c.prompt_logprobs[t].logprob;
        r.logprobs.push_back(sum);
      }
      const double top = *std::max_element(r.logprobs.begin(), r.logprobs.end());
      double z = 0.0;
      for (double lp : r.logprobs) z += std::exp(lp - top);
      for (double lp : r.logprobs) r.probs.push_back(std::exp(lp - top) / z);
      const size_t best = size_t(std::max_element(r.probs.begin(), r.probs.end()) - r.probs.begin());
      r.label = options_.labels[best];
      if (options_.decode) {
        Completion c = decodes[i - begin].get();
        if (c.finish == FinishReason::error) fail(ErrorKind::internal, "constrained decoding failed: {}", c.error);
        const std::string text = tok.decode(c.tokens, true);
        for (size_t l = 0; l < k; ++l) {
          if (text == choices[l]) r.label = options_.labels[l];
        }
      }
    }
  }
  return results;
}

}  // namespace slm::tasks
