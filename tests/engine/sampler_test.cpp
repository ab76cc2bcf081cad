#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "slm/engine/batch_sequence.hpp"
#include "slm/engine/logit_rows.hpp"
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

// Logits with many exact ties (multiples of 0.25), so that the order of equal logits matters.
std::vector<float> tied_logits(size_t n, uint32_t seed) {
  auto v = random_logits(n, seed);
  for (auto& x : v) x = std::round(x * 4.0f) / 4.0f;
  return v;
}

TEST(TopLogits, LargestFirstLowerIdFirstAmongEqualNaNSkipped) {
  for (uint32_t seed = 1; seed < 30; ++seed) {
    auto row = tied_logits(size_t(50 + seed * 37), seed);
    if (seed % 3 == 0) row[seed] = std::nanf("");
    for (int32_t k : {1, 7, 64, 5000}) {
      std::vector<int32_t> order;
      for (size_t i = 0; i < row.size(); ++i)
        if (!std::isnan(row[i])) order.push_back(int32_t(i));
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[size_t(a)] > row[size_t(b)]; });
      order.resize(std::min(order.size(), size_t(k)));
      std::vector<int32_t> ids(size_t(k), -1);
      std::vector<float> values(static_cast<size_t>(k), 0.0f);
      const int32_t n = top_logits(row.data(), int64_t(row.size()), k, ids.data(), values.data());
      ASSERT_EQ(size_t(n), order.size());
      for (int32_t i = 0; i < n; ++i) {
        EXPECT_EQ(ids[size_t(i)], order[size_t(i)]) << "seed " << seed << " k " << k << " at " << i;
        EXPECT_EQ(values[size_t(i)], row[size_t(order[size_t(i)])]);
      }
    }
  }
}

// A row with fewer numbers than k (NaN): its summary ends with id -1, and sampling from a summary
// with no numbers is an error for that sequence, never a token id of -1.
TEST(TopLogits, RowsWithNaNEndEarlyAndAnEmptySummaryIsAnError) {
  const float nan = std::nanf("");
  const std::vector<float> rows{nan, 2.0f, nan, 1.0f, nan, nan, nan, nan};  // two rows of 4
  TopLogits top;
  top.k = {3, 2};
  top.k_max = 3;
  summarize_rows(rows.data(), 4, top);
  EXPECT_EQ(top.ids[0], 1);
  EXPECT_EQ(top.ids[1], 3);
  EXPECT_EQ(top.ids[2], -1);
  EXPECT_EQ(top.ids[3], -1);  // row 1: nothing
  EXPECT_EQ(top.lse[1], -INFINITY);

  GenerationRequest r;
  r.prompt = {1, 2};
  r.sampling.temperature = 0.0f;
  r.max_tokens = 4;
  SchedulerSequence seq(1, r, [](const GenerationEvent&) { return true; });
  std::vector<float> scratch;
  std::vector<uint8_t> mask;
  const LogitRow empty{nullptr, top.lse[1], top.ids.data() + 3, top.values.data() + 3, 0};
  EXPECT_THROW(sample_next(seq, empty, 4, 16, nullptr, scratch, mask), Error);
  const LogitRow two{nullptr, top.lse[0], top.ids.data(), top.values.data(), 2};
  const SampleOutcome out = sample_next(seq, two, 4, 16, nullptr, scratch, mask);
  EXPECT_EQ(out.event.token, 1);
  EXPECT_NEAR(out.event.logprob, 2.0f - top.lse[0], 1e-6f);
}

// sample_top over a row's top candidates picks what sample() picks over the whole row, draw for draw.
TEST(Sampler, SampleTopMatchesSampleOnTheWholeRow) {
  int checked = 0;
  for (float temperature : {0.0f, 0.6f, 1.0f, 1.7f}) {
    for (int32_t top_k : {1, 3, 40, 64}) {
      for (float top_p : {1.0f, 0.9f, 0.5f}) {
        for (float min_p : {0.0f, 0.05f, 0.3f}) {
          SamplerOptions o;
          o.temperature = temperature;
          o.top_k = top_k;
          o.top_p = top_p;
          o.min_p = min_p;
          o.seed = 77 + uint64_t(top_k);
          Sampler whole(o), top(o);
          ASSERT_EQ(top.top_candidates(), temperature <= 0.0f ? 1 : top_k);
          for (uint32_t step = 0; step < 12; ++step) {
            auto row = step % 2 ? tied_logits(3000, step) : random_logits(3000, step + 100);
            std::vector<int32_t> ids(Sampler::kMaxTopCandidates);
            std::vector<float> values(ids.size());
            const int32_t n = top_logits(row.data(), int64_t(row.size()), Sampler::kMaxTopCandidates, ids.data(),
                                         values.data());
            const int32_t expected = whole.sample(row);
            EXPECT_EQ(top.sample_top({ids.data(), size_t(n)}, {values.data(), size_t(n)}), expected)
                << "t " << temperature << " k " << top_k << " p " << top_p << " min_p " << min_p << " step " << step;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 4 * 4 * 3 * 3 * 12);
}

TEST(Sampler, TopCandidatesNeedsTheWholeRowForPenaltiesAndWideTopK) {
  SamplerOptions o;
  EXPECT_EQ(Sampler(o).top_candidates(), 40);
  o.top_k = 0;
  EXPECT_EQ(Sampler(o).top_candidates(), 0);
  o.top_k = Sampler::kMaxTopCandidates + 1;
  EXPECT_EQ(Sampler(o).top_candidates(), 0);
  o.top_k = 10;
  o.repeat_penalty = 1.1f;
  EXPECT_EQ(Sampler(o).top_candidates(), 0);
  o.repeat_penalty = 1.0f;
  o.frequency_penalty = 0.1f;
  EXPECT_EQ(Sampler(o).top_candidates(), 0);
  o.frequency_penalty = 0.0f;
  o.temperature = 0.0f;
  o.top_k = 0;
  EXPECT_EQ(Sampler(o).top_candidates(), 1);
  Sampler s(o);
  const std::vector<int32_t> ids{5};
  const std::vector<float> values{1.0f};
  EXPECT_EQ(s.sample_top(ids, values), 5);
  EXPECT_THROW(s.sample_top({}, {}), Error);
  o.temperature = 1.0f;
  Sampler whole(o);  // top_k 0: the whole row
  EXPECT_THROW(whole.sample_top(ids, values), Error);
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
