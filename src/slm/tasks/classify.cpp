#include "slm/tasks/classify.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <span>

#include "slm/tasks/llm.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {

// Exactly one label, spelled by its canonical tokens (as the tokenizer encodes " label"): decoding
// then follows the same token paths the probabilities are computed on.
class LabelTokenConstraint : public TokenConstraint {
 public:
  LabelTokenConstraint(std::vector<std::vector<int32_t>> labels, std::vector<int32_t> eog)
      : labels_(std::move(labels)), eog_(std::move(eog)) {}

  void allowed_tokens(std::span<uint8_t> allowed) override {
    std::fill(allowed.begin(), allowed.end(), uint8_t(0));
    for (const auto& l : labels_) {
      if (matches(l) && l.size() > prefix_.size() && size_t(l[prefix_.size()]) < allowed.size()) allowed[size_t(l[prefix_.size()])] = 1;
    }
    if (complete()) {
      for (int32_t t : eog_) {
        if (t >= 0 && size_t(t) < allowed.size()) allowed[size_t(t)] = 1;
      }
    }
  }
  void accept(int32_t token) override {
    prefix_.push_back(token);
    if (std::none_of(labels_.begin(), labels_.end(), [&](const auto& l) { return matches(l); })) {
      prefix_.pop_back();
      fail(ErrorKind::invalid_argument, "token {} does not continue any label", token);
    }
  }
  bool complete() const override {
    return std::any_of(labels_.begin(), labels_.end(), [&](const auto& l) { return l == prefix_; });
  }
  bool finished() const override {
    return complete() && std::none_of(labels_.begin(), labels_.end(),
                                      [&](const auto& l) { return l.size() > prefix_.size() && matches(l); });
  }
  std::unique_ptr<TokenConstraint> clone_initial() const override {
    return std::make_unique<LabelTokenConstraint>(labels_, eog_);
  }

 private:
  bool matches(const std::vector<int32_t>& label) const {
    return label.size() >= prefix_.size() && std::equal(prefix_.begin(), prefix_.end(), label.begin());
  }
  std::vector<std::vector<int32_t>> labels_;
  std::vector<int32_t> eog_;
  std::vector<int32_t> prefix_;
};

}  // namespace

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
  std::shared_ptr<TokenConstraint> constraint;
  if (options_.decode) constraint = std::make_shared<LabelTokenConstraint>(label_tokens_, tok.data().eog_ids);

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
        for (size_t l = 0; l < k; ++l) {
          if (c.tokens == label_tokens_[l]) r.decoded = options_.labels[l];
        }
      }
    }
  }
  return results;
}

}  // namespace slm::tasks
