// Prompt embeddings for the semantic and learned policies, and the learned policy's classifier.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "slm/server/provider.hpp"

namespace slm::router {

class Embedder {
 public:
  virtual ~Embedder() = default;
  // A unit-length vector.
  virtual std::vector<float> embed(const std::string& text) = 0;
};

// Hashed features (lower-cased words, word pairs and character 3-grams, signed hashing) into `dim`
// buckets: no model needed, deterministic, good at lexical similarity only.
class HashedEmbedder : public Embedder {
 public:
  explicit HashedEmbedder(int dim) : dim_(dim) {}
  std::vector<float> embed(const std::string& text) override;

 private:
  int dim_;
};

// An in-process embedding model answering /v1/embeddings through the Provider interface.
class ProviderEmbedder : public Embedder {
 public:
  explicit ProviderEmbedder(std::shared_ptr<server::Provider> provider) : provider_(std::move(provider)) {}
  std::vector<float> embed(const std::string& text) override;

 private:
  std::shared_ptr<server::Provider> provider_;
};

float dot(const std::vector<float>& a, const std::vector<float>& b);

// Logistic regression P(strong tier needed | embedding), trained by full-batch gradient descent with
// L2 regularisation; the threshold is set so that a target share of prompts goes to the strong tier.
struct LogisticModel {
  std::vector<double> weights;
  double bias = 0;
  double threshold = 0.5;

  static LogisticModel train(const std::vector<std::vector<float>>& x, const std::vector<int>& y, int epochs = 300,
                             double learning_rate = 1.0, double l2 = 1e-4);
  double score(const std::vector<float>& x) const;
  // Sets `threshold` so that the share of `scores` at or above it is as close to `target` as the
  // scores allow; returns it.
  double calibrate(std::vector<double> scores, double target);
};

}  // namespace slm::router
