#include "slm/router/embed.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "slm/router/local.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

uint64_t fnv1a(std::string_view s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void normalize(std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += double(x) * x;
  if (sum <= 0) return;
  const float inv = float(1.0 / std::sqrt(sum));
  for (float& x : v) x *= inv;
}

}  // namespace

std::vector<float> HashedEmbedder::embed(const std::string& text) {
  std::vector<float> v(size_t(dim_), 0.0f);
  auto add = [&](std::string_view feature, uint64_t seed, float weight) {
    const uint64_t h = fnv1a(feature, seed);
    v[h % uint64_t(dim_)] += (h >> 63) ? weight : -weight;
  };
  std::vector<std::string> words;
  std::string word;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c >= 0x80) {
      word += char(std::tolower(c));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  for (size_t i = 0; i < words.size(); ++i) {
    add(words[i], 1, 1.0f);
    if (i + 1 < words.size()) add(words[i] + " " + words[i + 1], 2, 0.7f);
    const std::string padded = " " + words[i] + " ";
    for (size_t k = 0; k + 3 <= padded.size(); ++k) add(std::string_view(padded).substr(k, 3), 3, 0.3f);
  }
  normalize(v);
  return v;
}

std::vector<float> ProviderEmbedder::embed(const std::string& text) {
  const nlohmann::json answer = call_provider_blocking(*provider_, Endpoint::embeddings, {{"input", text}}, 60);
  try {
    std::vector<float> v = answer.at("data").at(0).at("embedding").get<std::vector<float>>();
    normalize(v);
    return v;
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, "expected data[0].embedding in the embedding model's answer, found {}", e.what());
  }
}

float dot(const std::vector<float>& a, const std::vector<float>& b) {
  const size_t n = std::min(a.size(), b.size());
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return float(s);
}

LogisticModel LogisticModel::train(const std::vector<std::vector<float>>& x, const std::vector<int>& y, int epochs,
                                   double learning_rate, double l2) {
  if (x.empty() || x.size() != y.size()) {
    fail(ErrorKind::invalid_argument, "expected as many labels as examples (at least one), found {} examples and {} labels", x.size(), y.size());
  }
  const size_t dim = x[0].size();
  LogisticModel m;
  m.weights.assign(dim, 0.0);
  // Class weights balance the labels so a rare class still moves the boundary.
  double positives = 0;
  for (int label : y) positives += label ? 1 : 0;
  const double n = double(x.size());
  const double w_pos = positives > 0 ? n / (2 * positives) : 1, w_neg = positives < n ? n / (2 * (n - positives)) : 1;
  std::vector<double> grad(dim);
  for (int epoch = 0; epoch < epochs; ++epoch) {
    std::fill(grad.begin(), grad.end(), 0.0);
    double grad_bias = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double p = m.score(x[i]);
      const double err = (p - y[i]) * (y[i] ? w_pos : w_neg);
      for (size_t k = 0; k < dim && k < x[i].size(); ++k) grad[k] += err * x[i][k];
      grad_bias += err;
    }
    for (size_t k = 0; k < dim; ++k) m.weights[k] -= learning_rate * (grad[k] / n + l2 * m.weights[k]);
    m.bias -= learning_rate * grad_bias / n;
  }
  return m;
}

double LogisticModel::score(const std::vector<float>& x) const {
  double z = bias;
  const size_t n = std::min(weights.size(), x.size());
  for (size_t k = 0; k < n; ++k) z += weights[k] * x[k];
  return 1.0 / (1.0 + std::exp(-z));
}

double LogisticModel::calibrate(std::vector<double> scores, double target) {
  if (scores.empty()) return threshold;
  std::sort(scores.begin(), scores.end(), std::greater<>());
  // Candidate thresholds: each distinct score (everything at or above it goes strong) and one above
  // the highest (nothing does). Ties move together, so pick the candidate whose share is closest.
  const double n = double(scores.size());
  double best = std::nextafter(scores.front(), 2.0), best_gap = target;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (i + 1 < scores.size() && scores[i + 1] == scores[i]) continue;
    const double gap = std::abs(double(i + 1) / n - target);
    if (gap < best_gap) {
      best_gap = gap;
      best = scores[i];
    }
  }
  threshold = best;
  return threshold;
}

}  // namespace slm::router
