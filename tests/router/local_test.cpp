// In-process tiers: the demo model served by the engine's provider behind the router, as
// `slm serve --config` runs it.
#include <gtest/gtest.h>

#include "router_test_util.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/model/model.hpp"
#include "slm/server/engine_provider.hpp"

namespace slm::router {
namespace {

const std::string kDemo = std::string(SLM_SOURCE_DIR) + "/models/demo/demo-q8_0.gguf";

std::shared_ptr<server::Provider> engine_for(const std::string& path) {
  SchedulerOptions options;
  options.n_ctx = 256;
  options.max_sequences = 2;
  server::LocalModel m;
  m.id = server::model_id_from_path(path);
  m.scheduler = std::make_shared<Scheduler>(Model::load(path), options);
  std::vector<server::LocalModel> models;
  models.push_back(std::move(m));
  return std::make_shared<server::EngineProvider>(std::move(models));
}

std::unique_ptr<Router> local_router(const std::string& extra) {
  const std::string yaml = "tiers:\n  - name: small\n    deployments: [{model: '" + kDemo + "'}]\n  - name: workhorse\n    deployments: [{model: '" +
                           kDemo + "'}]\n" + extra;
  RouterConfig c = parse_config(yaml, "router.yaml");
  c.database = ":memory:";
  RouterOptions options;
  int made = 0;
  options.local_factory = [&made](const std::string& path) {
    ++made;
    return engine_for(path);
  };
  auto r = std::make_unique<Router>(std::move(c), options);
  EXPECT_EQ(made, 1);  // one engine for both tiers: same file
  return r;
}

nlohmann::json demo_request(const std::string& model, bool stream) {
  nlohmann::json r = test::chat_request(model, "Once upon a time", stream);
  r["max_tokens"] = 8;
  r["temperature"] = 0;
  return r;
}

TEST(RouterLocal, TwoInProcessTiersAnswerStreamedAndWhole) {
  auto r = local_router("routes:\n  - {model: auto, policy: p}\npolicies:\n  p:\n    kind: rules\n    rules:\n"
                        "      - {when: {task: hard}, tier: workhorse}\n    default: small\n");
  auto whole = std::make_shared<test::RecordingSink>();
  r->chat_completions(demo_request("auto", false), test::request_info("l1"), whole);
  ASSERT_TRUE(whole->wait(120));
  ASSERT_FALSE(whole->failed) << whole->error.message;
  const std::string text = whole->json["choices"][0]["message"]["content"];
  EXPECT_FALSE(text.empty());
  EXPECT_GT(whole->json["usage"]["completion_tokens"].get<int>(), 0);

  auto streamed = std::make_shared<test::RecordingSink>();
  r->chat_completions(demo_request("auto", true), test::request_info("l2", "", {{"x-slm-task", "hard"}}), streamed);
  ASSERT_TRUE(streamed->wait(120));
  ASSERT_FALSE(streamed->failed) << streamed->error.message;
  EXPECT_TRUE(streamed->stream_done);
  EXPECT_EQ(streamed->streamed_text(), text);  // greedy: the same words, in pieces
  const auto st = r->store().stats();
  EXPECT_EQ(st["tiers"]["small"]["requests"], 1);
  EXPECT_EQ(st["tiers"]["workhorse"]["requests"], 1);
  EXPECT_GT(st["tiers"]["workhorse"]["output_tokens"].get<int>(), 0);
}

TEST(RouterLocal, CascadeReadsTheEngineLogprobs) {
  // Impossible confidence: every answer escalates; trivial confidence: none does.
  auto strict = local_router("routes:\n  - {model: auto, policy: c}\npolicies:\n  c:\n    kind: cascade\n    tiers: [small, workhorse]\n"
                             "    min_mean_logprob: 0.5\n");
  auto s = std::make_shared<test::RecordingSink>();
  strict->chat_completions(demo_request("auto", false), test::request_info("c1"), s);
  ASSERT_TRUE(s->wait(120));
  ASSERT_FALSE(s->failed) << s->error.message;
  strict->store().flush();
  auto st = strict->store().stats();
  EXPECT_EQ(st["tiers"]["workhorse"]["escalations"], 1) << st.dump();

  auto lenient = local_router("routes:\n  - {model: auto, policy: c}\npolicies:\n  c:\n    kind: cascade\n    tiers: [small, workhorse]\n"
                              "    min_mean_logprob: -100\n");
  auto l = std::make_shared<test::RecordingSink>();
  lenient->chat_completions(demo_request("auto", true), test::request_info("c2"), l);
  ASSERT_TRUE(l->wait(120));
  ASSERT_FALSE(l->failed) << l->error.message;
  EXPECT_TRUE(l->stream_done);
  EXPECT_FALSE(l->streamed_text().empty());
  st = lenient->store().stats();
  EXPECT_EQ(st["tiers"]["small"]["requests"], 1) << st.dump();
  EXPECT_FALSE(st["tiers"].contains("workhorse")) << st.dump();
}

}  // namespace
}  // namespace slm::router
