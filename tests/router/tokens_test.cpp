// Prompt lengths counted per tier: bytes-per-token estimates, tokenizer files, in-process models;
// the rules policy, context limits and token rate limits counting with them.
#include <gtest/gtest.h>

#include "router_test_util.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/model/model.hpp"
#include "slm/router/tokens.hpp"
#include "slm/server/engine_provider.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

const std::string kDemo = std::string(SLM_SOURCE_DIR) + "/models/demo/demo-q8_0.gguf";
const std::string kDemoTokenizer = std::string(SLM_SOURCE_DIR) + "/models/demo/hf/tokenizer.json";
// 44 bytes: the bytes / 4 estimate says 11 tokens; the demo model's small vocabulary needs more.
const std::string kSentence = "The quick brown fox jumps over the lazy dog.";

nlohmann::json chat(const std::vector<std::string>& texts) {
  nlohmann::json messages = nlohmann::json::array();
  for (size_t i = 0; i < texts.size(); ++i) messages.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", texts[i]}});
  return {{"model", "auto"}, {"messages", messages}};
}

TEST(RouterTokens, CharsPerTokenCountsEveryMessageRoundedUp) {
  const CharsPerTokenCounter four(4), three_and_a_half(3.5);
  const auto request = chat({"abcdefghij", "klmnopq", "rstuvwxyz0123"});  // 10 + 7 + 13 = 30 bytes
  EXPECT_EQ(four.prompt_tokens(request), 8);              // ceil(30 / 4)
  EXPECT_EQ(three_and_a_half.prompt_tokens(request), 9);  // ceil(30 / 3.5) = ceil(8.57)
  EXPECT_EQ(four.prompt_tokens({{"model", "m"}, {"prompt", "twelve bytes"}}), 3);
  EXPECT_EQ(four.prompt_tokens({{"model", "m"}, {"input", {"abcde", "fgh"}}}), 2);
  EXPECT_EQ(four.text_tokens(""), 0);
  // Parts of a multimodal message: only the text counts.
  nlohmann::json parts = chat({""});
  parts["messages"][0]["content"] = {{{"type", "text"}, {"text", "eight by"}}, {{"type", "image_url"}, {"image_url", {{"url", "x"}}}}};
  EXPECT_EQ(four.prompt_tokens(parts), 2);
  EXPECT_THROW(CharsPerTokenCounter(0), Error);
}

TEST(RouterTokens, TokenizerFileCountsEachMessagePlusTemplateMarkers) {
  const TokenizerCounter counter(kDemoTokenizer);
  const Tokenizer tokenizer = Tokenizer::load(kDemoTokenizer);
  const std::vector<std::string> texts = {kSentence, "Sure.", "And again: " + kSentence};
  int64_t expected = int64_t(tokenizer.encode("", true, false).size());
  for (const auto& t : texts) expected += int64_t(tokenizer.encode(t, false, false).size()) + TokenizerCounter::kMessageOverhead;
  EXPECT_EQ(counter.prompt_tokens(chat(texts)), expected);
  const int64_t sentence = counter.text_tokens(kSentence);
  EXPECT_EQ(sentence, int64_t(tokenizer.encode(kSentence, false, false).size()));
  EXPECT_GT(sentence, CharsPerTokenCounter(4).text_tokens(kSentence));  // the demo vocabulary is small
  // Completions: a token-id prompt is its own length.
  EXPECT_EQ(counter.prompt_tokens({{"model", "m"}, {"prompt", {5, 6, 7, 8, 9}}}), 5);
  EXPECT_THROW(TokenizerCounter("/nonexistent/tokenizer.json"), Error);
}

TEST(RouterTokens, RulesCountPromptLengthWithTheRulesTier) {
  auto decide = [](const std::string& small_counting) {
    const std::string yaml = "tiers:\n  - name: small\n    " + small_counting + "\n    deployments: [{url: 'http://127.0.0.1:9/v1'}]\n"
                             "  - name: big\n    deployments: [{url: 'http://127.0.0.1:9/v1'}]\n"
                             "routes:\n  - {model: auto, policy: p}\n"
                             "policies:\n  p:\n    kind: rules\n    rules:\n"
                             "      - {name: short, when: {max_prompt_tokens: 14}, tier: small}\n    default: big\n";
    const RouterConfig config = parse_config(yaml, "router.yaml");
    Policies policies(config, std::make_shared<HashedEmbedder>(64));
    auto counters = std::make_shared<const TokenCounters>(counters_from_config(config));
    return policies.decide(route_input(chat({kSentence}), {}, "x-slm-task", counters));
  };
  // 44 bytes at 4 per token: 11 <= 14, the short rule holds.
  const Decision estimated = decide("chars_per_token: 4");
  EXPECT_EQ(estimated.tier, "small");
  EXPECT_NE(estimated.reasons.back().find("prompt_tokens=11<=14"), std::string::npos) << estimated.reasons.back();
  // At 2 bytes per token: 22 > 14.
  EXPECT_EQ(decide("chars_per_token: 2").tier, "big");
  // The demo tokenizer: more than 14 tokens.
  const Decision tokenized = decide("tokenizer: '" + kDemoTokenizer + "'");
  EXPECT_EQ(tokenized.tier, "big");
}

TEST(RouterTokens, ConfigTakesTokenizerOrCharsPerTokenNotBoth) {
  const std::string head = "tiers:\n  - name: a\n    deployments: [{url: 'http://127.0.0.1:9/v1'}]\n";
  EXPECT_EQ(parse_config(head + "    chars_per_token: 3.5\n", "r.yaml").tiers[0].chars_per_token, 3.5);
  try {
    parse_config(head + "    chars_per_token: 0\n", "r.yaml");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.yaml:4:22: expected chars_per_token above 0, found 0"), std::string::npos) << e.what();
  }
  try {
    parse_config(head + "    tokenizer: t.json\n    chars_per_token: 3\n", "r.yaml");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.yaml:5:22: expected either tokenizer or chars_per_token"), std::string::npos) << e.what();
  }
  // A tokenizer that is not there stops the start with the tier's line.
  const RouterConfig missing = parse_config(head + "    tokenizer: /nonexistent/tokenizer.json\n", "r.yaml");
  EXPECT_THROW(counters_from_config(missing), Error);
}

std::shared_ptr<server::Provider> demo_engine() {
  SchedulerOptions options;
  options.n_ctx = 256;
  options.max_sequences = 2;
  server::LocalModel m;
  m.id = "demo";
  m.scheduler = std::make_shared<Scheduler>(Model::load(kDemo), options);
  std::vector<server::LocalModel> models;
  models.push_back(std::move(m));
  return std::make_shared<server::EngineProvider>(std::move(models));
}

TEST(RouterTokens, InProcessTierCountsWithItsModelForContextAndRateLimits) {
  auto engine = demo_engine();
  const ProviderCounter counter(engine, "demo");
  const nlohmann::json request = chat({kSentence});
  const int64_t counted = counter.prompt_tokens(request);
  // The chat template's markers come on top of the sentence's own tokens.
  EXPECT_GT(counted, TokenizerCounter(kDemoTokenizer).text_tokens(kSentence));
  EXPECT_EQ(counter.text_tokens(kSentence), TokenizerCounter(kDemoTokenizer).text_tokens(kSentence));

  // small: the in-process model with a context the estimate fits in and the real count does not.
  const std::string yaml = "tiers:\n  - name: small\n    context: " + std::to_string(counted - 1) + "\n    deployments: [{model: '" + kDemo +
                           "'}]\n  - name: big\n    deployments: [{model: '" + kDemo + "'}]\n"
                           "limits:\n  keys:\n    sk-tight: {tokens_per_minute: " + std::to_string(counted - 1) + "}\n";
  RouterConfig c = parse_config(yaml, "router.yaml");
  c.database = ":memory:";
  RouterOptions options;
  options.local_factory = [&](const std::string&) { return engine; };
  Router router(std::move(c), options);
  ASSERT_LT(CharsPerTokenCounter(4).prompt_tokens(request), counted - 1);

  nlohmann::json ask = request;
  ask["model"] = "small";
  ask["max_tokens"] = 2;
  auto sink = std::make_shared<test::RecordingSink>();
  router.chat_completions(ask, test::request_info("t1"), sink);
  ASSERT_TRUE(sink->wait(60));
  ASSERT_FALSE(sink->failed) << sink->error.message;
  router.store().flush();
  const nlohmann::json stats = router.store().stats();
  EXPECT_EQ(stats["tiers"]["big"]["requests"], 1) << stats.dump();  // small skipped: the prompt exceeds its context

  // A token rate the estimate fits in and the real count does not: refused at admission.
  auto limited = std::make_shared<test::RecordingSink>();
  router.chat_completions(ask, test::request_info("t2", "sk-tight"), limited);
  ASSERT_TRUE(limited->wait(60));
  ASSERT_TRUE(limited->failed);
  EXPECT_EQ(limited->error.status, 429);
  EXPECT_NE(limited->error.message.find("tokens per minute"), std::string::npos) << limited->error.message;
}

}  // namespace
}  // namespace slm::router
