// The in-process backend: log-likelihoods equal sums of log-softmax over Session logits computed
// directly, whatever was scored before (prefix reuse); generation stops at stop strings.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "slm/backend/cpu/ops.hpp"
#include "slm/engine/session.hpp"
#include "slm/eval/backend.hpp"
#include "slm/model/model.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "../common/models.hpp"

using namespace slm;
using namespace slm::eval;

namespace {

std::shared_ptr<const Model> demo() { return slm_test::demo_model(); }

// Direct computation: tokens of context + continuation, the continuation being the tokens after
// those of the context alone; one forward of everything; sum of log-softmax at those positions.
double direct_loglikelihood(const std::string& context, const std::string& continuation, bool* greedy) {
  auto model = demo();
  const Tokenizer& tok = *model->tokenizer();
  const auto whole = tok.encode(context + continuation, true, false);
  const auto ctx = tok.encode(context, true, false);
  const int64_t vocab = model->config().vocab_size;
  Session session(model, SessionOptions{});
  std::vector<float> logits(whole.size() * size_t(vocab)), row(static_cast<size_t>(vocab));
  session.forward(whole, logits.data(), true);
  double sum = 0;
  *greedy = true;
  for (size_t t = ctx.size(); t < whole.size(); ++t) {
    const float* l = logits.data() + (t - 1) * size_t(vocab);
    cpu::log_softmax(l, row.data(), vocab);
    sum += row[size_t(whole[t])];
    if (std::max_element(l, l + vocab) - l != whole[t]) *greedy = false;
  }
  return sum;
}

}  // namespace

TEST(LocalBackend, LoglikelihoodMatchesSessionLogits) {
  auto backend = make_local_backend(demo(), LocalOptions{});
  const std::vector<LoglikelihoodRequest> requests = {
      {"It is a truth universally", " acknowledged"},
      {"It is a truth universally", " denied by all"},
      {"Question: Where is the sun?\nAnswer:", " in the sky"},
      {"It is a truth", " universally acknowledged"},
  };
  size_t last_progress = 0;
  const auto results = backend->loglikelihood(requests, [&](size_t d) { last_progress = d; });
  ASSERT_EQ(results.size(), requests.size());
  EXPECT_EQ(last_progress, requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    bool greedy = false;
    const double expected = direct_loglikelihood(requests[i].context, requests[i].continuation, &greedy);
    EXPECT_LT(results[i].logprob, 0.0);
    EXPECT_NEAR(results[i].logprob, expected, 1e-3 * std::max(1.0, std::fabs(expected))) << i;
    EXPECT_EQ(results[i].is_greedy, greedy) << i;
    EXPECT_GT(results[i].tokens, 0);
  }
  // A likely continuation scores higher than an unlikely one of similar length.
  EXPECT_GT(results[0].logprob, results[1].logprob);
}

TEST(LocalBackend, TrailingContextSpaceMovesToTheContinuation) {
  auto backend = make_local_backend(demo(), LocalOptions{});
  const auto a = backend->loglikelihood({{"It is a truth ", "universally"}}, {});
  const auto b = backend->loglikelihood({{"It is a truth", " universally"}}, {});
  EXPECT_DOUBLE_EQ(a[0].logprob, b[0].logprob);
}

TEST(LocalBackend, LongContextsAreCutFromTheLeft) {
  LocalOptions o;
  o.n_ctx = 32;
  auto backend = make_local_backend(demo(), o);
  std::string context;
  for (int i = 0; i < 40; ++i) context += "It is a truth universally acknowledged. ";
  const auto r = backend->loglikelihood({{context, "The end"}}, {});
  EXPECT_TRUE(std::isfinite(r[0].logprob));
  EXPECT_LT(r[0].logprob, 0.0);
}

TEST(LocalBackend, GenerationStopsAtStopStrings) {
  LocalOptions o;
  o.concurrency = 2;
  auto backend = make_local_backend(demo(), o);
  const std::vector<GenerationSpec> specs = {
      {"It is a truth universally acknowledged", {}, 24},
      {"It is a truth universally acknowledged", {"e"}, 24},
      {"Once upon a time", {}, 8},
  };
  size_t done = 0;
  std::vector<int> seen(specs.size(), 0);
  std::vector<std::string> each_text(specs.size());
  const auto gens = backend->generate(specs, [&](size_t d) { done = d; }, [&](size_t i, const Generation& g) {
    ++seen.at(i);
    each_text.at(i) = g.text;
  });
  std::vector<std::string> out;
  for (const auto& g : gens) out.push_back(g.text);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(done, 3u);
  // Every result was handed out once, as it finished, with its final text.
  EXPECT_EQ(seen, std::vector<int>(specs.size(), 1));
  EXPECT_EQ(each_text, out);
  EXPECT_FALSE(out[0].empty());
  // Greedy: the same prompt gives the same text, cut before the first "e" in the second.
  ASSERT_NE(out[0].find('e'), std::string::npos) << out[0];
  EXPECT_EQ(out[1], out[0].substr(0, out[0].find('e')));
  EXPECT_LT(out[1].size(), out[0].size());
  EXPECT_EQ(cut_at_stop("abc\ndef\nclass X", {"\nclass", "\ndef"}), "abc");
}
