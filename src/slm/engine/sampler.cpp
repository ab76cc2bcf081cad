#include "slm/engine/sampler.hpp"

#include <algorithm>
#include <cmath>

#include "slm/util/error.hpp"

namespace slm {

Sampler::Sampler(const SamplerOptions& options) : options_(options) {
  if (options.top_p <= 0.0f) fail(ErrorKind::invalid_argument, "top_p must be in (0, 1], found {}", options.top_p);
  if (options.min_p < 0.0f || options.min_p > 1.0f) {
    fail(ErrorKind::invalid_argument, "min_p must be in [0, 1], found {}", options.min_p);
  }
  if (options.repeat_penalty <= 0.0f) {
    fail(ErrorKind::invalid_argument, "repeat_penalty must be positive, found {}", options.repeat_penalty);
  }
  if (options.repeat_last_n < 0) {
    fail(ErrorKind::invalid_argument, "repeat_last_n must be >= 0, found {}", options.repeat_last_n);
  }
  seed_ = options.seed == 0xFFFFFFFFu ? std::random_device{}() : options.seed;
  rng_.seed(seed_);
}

void Sampler::reset() {
  recent_.clear();
  counts_.clear();
  rng_.seed(seed_);
}

void Sampler::accept(int32_t token) {
  if (options_.repeat_last_n == 0) return;
  recent_.push_back(token);
  ++counts_[token];
  if (int32_t(recent_.size()) > options_.repeat_last_n) {
    const int32_t old = recent_.front();
    recent_.pop_front();
    if (--counts_[old] == 0) counts_.erase(old);
  }
}

bool Sampler::penalized() const {
  return options_.repeat_penalty != 1.0f || options_.presence_penalty != 0.0f || options_.frequency_penalty != 0.0f;
}

void Sampler::apply_penalties(std::span<float> logits) const {
  if (!penalized()) return;
  const bool repeat = options_.repeat_penalty != 1.0f;
  for (const auto& [token, count] : counts_) {
    if (token < 0 || size_t(token) >= logits.size()) continue;
    float& l = logits[size_t(token)];
    if (repeat) l = l > 0 ? l / options_.repeat_penalty : l * options_.repeat_penalty;
    l -= float(count) * options_.frequency_penalty + options_.presence_penalty;
  }
}

int32_t Sampler::sample(std::span<float> logits) {
  if (logits.empty()) fail(ErrorKind::invalid_argument, "cannot sample from an empty vocabulary");
  apply_penalties(logits);
  if (options_.temperature <= 0.0f) {
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates, most likely first; top-k bounds how many are sorted.
  const size_t n = logits.size();
  size_t k = options_.top_k > 0 ? std::min(size_t(options_.top_k), n) : n;
  candidates_.resize(n);
  for (size_t i = 0; i < n; ++i) candidates_[i] = {int32_t(i), logits[i], 0.0f};
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  if (k < n) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + std::ptrdiff_t(k), candidates_.end(), by_logit);
    candidates_.resize(k);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  return draw();
}

int32_t Sampler::top_candidates() const {
  if (penalized()) return 0;
  if (options_.temperature <= 0.0f) return 1;
  return options_.top_k > 0 && options_.top_k <= kMaxTopCandidates ? options_.top_k : 0;
}

int32_t Sampler::sample_top(std::span<const int32_t> ids, std::span<const float> logits) {
  const int32_t k = top_candidates();
  if (k <= 0) fail(ErrorKind::invalid_argument, "sampler: the whole row of logits is needed, found only the top ones");
  if (ids.empty() || ids.size() != logits.size()) {
    fail(ErrorKind::invalid_argument, "sampler: expected ids and logits of the same nonzero length, found {} and {}",
         ids.size(), logits.size());
  }
  // A vocabulary smaller than top_k has fewer candidates: all of them.
  const size_t n = std::min(ids.size(), size_t(k));
  if (options_.temperature <= 0.0f) return ids[0];
  candidates_.resize(n);
  for (size_t i = 0; i < n; ++i) candidates_[i] = {ids[i], logits[i], 0.0f};
  return draw();
}

int32_t Sampler::draw() {
  auto softmax = [this](float temperature) {
    const float max_logit = candidates_.front().logit;
    double sum = 0.0;
    for (auto& c : candidates_) {
      c.p = std::exp((c.logit - max_logit) / temperature);
      sum += c.p;
    }
    for (auto& c : candidates_) c.p = float(c.p / sum);
  };
  // top-p: the smallest prefix whose probability reaches top_p (probabilities at temperature 1).
  softmax(1.0f);
  if (options_.top_p < 1.0f) {
    double cumulative = 0.0;
    size_t keep = candidates_.size();
    for (size_t i = 0; i < candidates_.size(); ++i) {
      cumulative += candidates_[i].p;
      if (cumulative >= options_.top_p) {
        keep = i + 1;
        break;
      }
    }
    candidates_.resize(keep);
  }
  // min-p: drop tokens less likely than min_p times the most likely one.
  if (options_.min_p > 0.0f) {
    const float threshold = candidates_.front().p * options_.min_p;
    size_t keep = 1;
    while (keep < candidates_.size() && candidates_[keep].p >= threshold) ++keep;
    candidates_.resize(keep);
  }
  softmax(options_.temperature);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const double r = uniform(rng_);
  double cumulative = 0.0;
  for (const auto& c : candidates_) {
    cumulative += c.p;
    if (r < cumulative) return c.id;
  }
  return candidates_.back().id;
}

}  // namespace slm
