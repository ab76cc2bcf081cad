#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "slm/engine/sampler.hpp"
#include "slm/util/error.hpp"

using namespace slm;

namespace {

std::vector<float> random_logits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

int32_t argmax(const std::vector<float>& v) { return int32_t(std::max_element(v.begin(), v.end()) - v.begin()); }

TEST(Sampler, GreedyPicksArgmax) {
  SamplerOptions o;
  o.temperature = 0.0f;
  Sampler s(o);
  for (uint32_t seed = 1; seed < 20; ++seed) {
    auto l = random_logits(1000, seed);
    const int32_t expected = argmax(l);
    EXPECT_EQ(s.sample(l), expected);
  }
}

TEST(Sampler, TopKOfOneIsGreedy) {
  SamplerOptions o;
  o.top_k = 1;
  o.seed = 5;
  Sampler s(o);
  auto l = random_logits(500, 3);
  const int32_t expected = argmax(l);
  for (int i = 0; i < 10; ++i) {
    auto copy = l;
    EXPECT_EQ(s.sample(copy), expected);
  }
}

TEST(Sampler, SameSeedSameTokens) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.seed = 42;
  auto run = [&]() {
    Sampler s(o);
    std::vector<int32_t> out;
    for (uint32_t i = 0; i < 50; ++i) {
      auto l = random_logits(300, i);
      out.push_back(s.sample(l));
      s.accept(out.back());
    }
    return out;
  };
  EXPECT_EQ(run(), run());
  o.seed = 43;
  auto other = run();
  o.seed = 42;
  EXPECT_NE(run(), other);
}

TEST(Sampler, UnfilteredSamplingFollowsSoftmax) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  o.seed = 7;
  Sampler s(o);
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f};
  std::vector<double> p(4);
  double z = 0;
  for (size_t i = 0; i < 4; ++i) z += std::exp(logits[i]);
  for (size_t i = 0; i < 4; ++i) p[i] = std::exp(logits[i]) / z;
  std::vector<int> counts(4);
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    auto copy = logits;
    ++counts[size_t(s.sample(copy))];
  }
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(double(counts[i]) / n, p[i], 0.01) << i;
}

TEST(Sampler, TopPAndMinPRemoveUnlikelyTokens) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 0.5f;
  o.min_p = 0.0f;
  o.seed = 9;
  Sampler s(o);
  // softmax of {5, 4, 0, 0}: token 0 alone has p ~ 0.73 >= 0.5, so only token 0 survives.
  for (int i = 0; i < 200; ++i) {
    std::vector<float> l = {5.0f, 4.0f, 0.0f, 0.0f};
    EXPECT_EQ(s.sample(l), 0);
  }
  o.top_p = 1.0f;
  o.min_p = 0.2f;  // token 1 has p/p_max = e^-1 ~ 0.37 >= 0.2; tokens 2, 3 have e^-5
  Sampler m(o);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 500; ++i) {
    std::vector<float> l = {5.0f, 4.0f, 0.0f, 0.0f};
    ++seen[m.sample(l)];
  }
  EXPECT_GT(seen[1], 0);
  EXPECT_EQ(seen.count(2) + seen.count(3), 0u);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegative) {
  SamplerOptions o;
  o.temperature = 0.0f;
  o.repeat_penalty = 2.0f;
  Sampler s(o);
  s.accept(0);
  // Without the penalty token 0 (3.0) beats token 1 (2.0); with it, 3.0 / 2 = 1.5 < 2.0.
  std::vector<float> l = {3.0f, 2.0f, -1.0f};
  EXPECT_EQ(s.sample(l), 1);
  EXPECT_FLOAT_EQ(l[0], 1.5f);
  s.accept(2);
  std::vector<float> l2 = {-1.0f, -1.5f, -0.9f};
  s.sample(l2);
  EXPECT_FLOAT_EQ(l2[2], -1.8f);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  SamplerOptions o;
  o.temperature = 0.0f;
  o.presence_penalty = 0.5f;
  o.frequency_penalty = 0.25f;
  Sampler s(o);
  s.accept(1);
  s.accept(1);
  std::vector<float> l = {0.0f, 1.0f};
  s.sample(l);
  EXPECT_FLOAT_EQ(l[1], 1.0f - 0.5f - 2 * 0.25f);
  EXPECT_FLOAT_EQ(l[0], 0.0f);
}

TEST(Sampler, RejectsBadOptions) {
  SamplerOptions o;
  o.top_p = 0.0f;
  EXPECT_THROW(Sampler{o}, Error);
  o = {};
  o.min_p = 1.5f;
  EXPECT_THROW(Sampler{o}, Error);
  o = {};
  o.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler{o}, Error);
}

}  // namespace
