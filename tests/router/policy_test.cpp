// Routing policies on labeled prompts where the right tier is known.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "router_test_util.hpp"
#include "slm/router/answer.hpp"
#include "slm/router/policy.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

using test::FakeUpstream;
using test::RecordingSink;

const char* kTiers = "tiers:\n  - name: small\n    deployments: [{url: 'http://127.0.0.1:1/v1'}]\n"
                     "  - name: strong\n    deployments: [{url: 'http://127.0.0.1:2/v1'}]\n";

RouteInput input_of(const nlohmann::json& request, std::map<std::string, std::string> headers = {}) {
  return route_input(request, headers, "x-slm-task");
}

nlohmann::json chat(const std::string& model, const std::string& text) {
  return {{"model", model}, {"messages", {{{"role", "system"}, {"content", "be brief"}}, {{"role", "user"}, {"content", text}}}}};
}

// Prompts of two kinds from templates and word lists: routine ones (the small tier suffices) and
// demanding ones (the strong tier is needed).
struct LabeledSet {
  std::vector<LabeledPrompt> items;
};

LabeledSet make_labeled(uint32_t seed, size_t n, double hard_share) {
  std::mt19937 rng(seed);
  const std::vector<std::string> things = {"apple", "river", "invoice", "ticket", "password", "meeting", "router", "garden",
                                           "train", "budget", "letter", "window", "printer", "coffee", "contract", "server"};
  const std::vector<std::string> easy = {"Translate the word {} into French.", "What is the plural of {}?",
                                         "Classify the sentiment of: my {} is fine.", "Extract the date from this {} note: due 3 May.",
                                         "Spell {} backwards.", "Is {} a noun or a verb?"};
  const std::vector<std::string> hard = {"Prove rigorously that the {} scheduling problem is NP-hard, with a full reduction.",
                                         "Write a detailed multi-step plan analysing trade-offs of redesigning the {} system architecture.",
                                         "Derive the closed-form asymptotic complexity of the recursive {} algorithm and justify each step.",
                                         "Compare three competing theories explaining the {} phenomenon and critique their evidence in depth."};
  LabeledSet s;
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t i = 0; i < n; ++i) {
    const bool strong = u(rng) < hard_share;
    const auto& templates = strong ? hard : easy;
    std::string t = templates[rng() % templates.size()];
    t.replace(t.find("{}"), 2, things[rng() % things.size()]);
    s.items.push_back({t, strong});
  }
  return s;
}

TEST(RoutePolicies, RulesDecideOnAliasTaskLengthToolsAndSchema) {
  const std::string yaml = std::string(kTiers) + R"(routes:
  - model: auto
    policy: rules
policies:
  rules:
    kind: rules
    rules:
      - {name: tools need strong, when: {tools: true}, tier: strong}
      - {name: long prompts, when: {min_prompt_tokens: 100}, tier: strong}
      - {name: structured extraction, when: {task: extract, json_schema: true}, tier: small}
      - {name: triage, when: {task: [triage, classify]}, tier: small}
    default: strong
)";
  const RouterConfig c = parse_config(yaml, "router.yaml");
  Policies p(c, std::make_shared<HashedEmbedder>(64));
  struct Case {
    nlohmann::json request;
    std::map<std::string, std::string> headers;
    std::string tier, reason;
  };
  nlohmann::json with_tools = chat("auto", "weather?");
  with_tools["tools"] = {{{"type", "function"}, {"function", {{"name", "get_weather"}}}}};
  nlohmann::json with_schema = chat("auto", "pull the fields");
  with_schema["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", "object"}}}}}};
  nlohmann::json with_meta = chat("auto", "is this spam?");
  with_meta["metadata"] = {{"task", "triage"}};
  const std::vector<Case> cases = {
      {with_tools, {}, "strong", "tools need strong matched (tools=yes)"},
      {chat("auto", std::string(500, 'x')), {}, "strong", "long prompts matched (prompt_tokens=127>=100)"},
      {with_schema, {{"x-slm-task", "extract"}}, "small", "structured extraction matched (task=extract, json_schema=yes)"},
      {with_schema, {{"x-slm-task", "chat"}}, "strong", "no rule matched; default tier strong"},
      {with_meta, {}, "small", "triage matched (task=triage)"},
      {chat("small", "direct"), {}, "small", "model names tier small directly"},
  };
  for (const auto& k : cases) {
    const Decision d = p.decide(input_of(k.request, k.headers));
    EXPECT_EQ(d.tier, k.tier) << k.request.dump();
    std::string all;
    for (const auto& r : d.reasons) all += r + "\n";
    EXPECT_NE(all.find(k.reason), std::string::npos) << all;
  }
  EXPECT_THROW(p.decide(input_of(chat("gpt-9", "x"))), Error);
}

TEST(RoutePolicies, SemanticPicksTheTierOfTheNearestExamples) {
  const std::string yaml = std::string(kTiers) + R"(routes:
  - {model: auto, policy: sem}
policies:
  sem:
    kind: semantic
    threshold: 0.2
    default: strong
    examples:
      small: ["Translate the word apple into French.", "What is the plural of letter?", "Classify the sentiment of: my coffee is fine.",
              "Spell garden backwards."]
      strong: ["Prove rigorously that the meeting scheduling problem is NP-hard, with a full reduction.",
               "Derive the closed-form asymptotic complexity of the recursive budget algorithm and justify each step."]
)";
  const RouterConfig c = parse_config(yaml, "router.yaml");
  Policies p(c, std::make_shared<HashedEmbedder>(512));
  const LabeledSet set = make_labeled(7, 200, 0.4);
  int right = 0, total = 0;
  for (const auto& item : set.items) {
    // Only the templates the examples cover.
    if (item.prompt.find("Write a detailed") == 0 || item.prompt.find("Compare three") == 0 || item.prompt.find("Is ") == 0 ||
        item.prompt.find("Extract the date") == 0) {
      continue;
    }
    const Decision d = p.decide(input_of(chat("auto", item.prompt)));
    right += d.tier == (item.strong ? "strong" : "small");
    ++total;
  }
  ASSERT_GT(total, 50);
  EXPECT_GE(double(right) / total, 0.95) << right << "/" << total;
  // Far from every example: the default.
  const Decision far = p.decide(input_of(chat("auto", "zzz qqq")));
  EXPECT_EQ(far.tier, "strong");
  EXPECT_NE(far.reasons.back().find("below threshold"), std::string::npos) << far.reasons.back();
}

TEST(RoutePolicies, LearnedPolicyHitsTheTargetShareOfStrongTraffic) {
  const auto dir = test::fresh_dir("learned");
  const LabeledSet train = make_labeled(11, 400, 0.3);
  {
    std::ofstream out(dir / "train.jsonl");
    for (const auto& item : train.items) out << nlohmann::json{{"prompt", item.prompt}, {"strong", item.strong}}.dump() << "\n";
  }
  const LabeledSet held_out = make_labeled(12, 600, 0.3);
  for (double target : {0.2, 0.3, 0.5}) {
    const std::string yaml = std::string(kTiers) + "routes:\n  - {model: auto, policy: learned}\npolicies:\n  learned:\n    kind: learned\n"
                             "    weak: small\n    strong: strong\n    training: '" + (dir / "train.jsonl").string() +
                             "'\n    target_strong_share: " + std::to_string(target) + "\n";
    const RouterConfig c = parse_config(yaml, "router.yaml");
    Policies p(c, std::make_shared<HashedEmbedder>(512));
    ASSERT_NE(p.learned_model("learned"), nullptr);
    int strong = 0, right = 0;
    for (const auto& item : held_out.items) {
      const Decision d = p.decide(input_of(chat("auto", item.prompt)));
      strong += d.tier == "strong";
      right += d.tier == (item.strong ? "strong" : "small");
    }
    const double share = double(strong) / double(held_out.items.size());
    EXPECT_NEAR(share, target, 0.05) << "target " << target;
    if (target == 0.3) EXPECT_GE(double(right) / double(held_out.items.size()), 0.95);  // the classifier separates the kinds
  }
}

TEST(RoutePolicies, LearnedPolicyWithoutBothLabelsFallsToDefault) {
  const auto dir = test::fresh_dir("learned_one_class");
  std::ofstream(dir / "train.jsonl") << "{\"prompt\": \"a\", \"strong\": false}\n";
  const std::string yaml = std::string(kTiers) + "routes:\n  - {model: auto, policy: learned}\npolicies:\n  learned:\n    kind: learned\n"
                           "    weak: small\n    strong: strong\n    default: small\n    training: '" + (dir / "train.jsonl").string() + "'\n";
  const RouterConfig c = parse_config(yaml, "router.yaml");
  Policies p(c, std::make_shared<HashedEmbedder>(64));
  const Decision d = p.decide(input_of(chat("auto", "x")));
  EXPECT_EQ(d.tier, "small");
  EXPECT_NE(d.reasons.back().find("not trained"), std::string::npos) << d.reasons.back();
}

TEST(RoutePolicies, SchemaChecks) {
  const nlohmann::json schema = nlohmann::json::parse(R"({"type": "object", "required": ["name", "tags"], "additionalProperties": false,
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}})");
  EXPECT_EQ(schema_violation(schema, nlohmann::json::parse(R"({"name": "x", "tags": ["a"], "age": 3})")), "");
  EXPECT_NE(schema_violation(schema, nlohmann::json::parse(R"({"name": "x"})")), "");
  EXPECT_NE(schema_violation(schema, nlohmann::json::parse(R"({"name": 1, "tags": []})")), "");
  EXPECT_NE(schema_violation(schema, nlohmann::json::parse(R"({"name": "x", "tags": ["c"]})")), "");
  EXPECT_NE(schema_violation(schema, nlohmann::json::parse(R"({"name": "x", "tags": [], "extra": 1})")), "");
  EXPECT_NE(schema_violation(schema, nlohmann::json::parse(R"({"name": "x", "tags": [], "age": -1})")), "");
}

// The cascade on a labeled set: the small tier's log-probabilities are low exactly on the prompts
// that need the strong tier (the fake makes them so), and the cascade escalates exactly those.
TEST(RoutePolicies, CascadeEscalatesTheHardPromptsOfALabeledSet) {
  FakeUpstream small("small"), strong("strong");
  const std::string yaml = "tiers:\n  - name: small\n    deployments: [{url: '" + small.url() + "'}]\n  - name: strong\n    deployments: [{url: '" +
                           strong.url() + "'}]\nroutes:\n  - {model: auto, policy: cascade}\npolicies:\n  cascade:\n    kind: cascade\n"
                           "    tiers: [small, strong]\n    min_mean_logprob: -1.0\n";
  RouterConfig c = parse_config(yaml, "router.yaml");
  c.database = ":memory:";
  Router router(std::move(c));
  std::vector<std::pair<std::string, bool>> set;
  for (int i = 0; i < 12; ++i) set.push_back({"question " + std::to_string(i) + (i % 3 == 0 ? " HARD" : ""), i % 3 == 0});
  int escalated = 0;
  for (size_t i = 0; i < set.size(); ++i) {
    auto sink = std::make_shared<RecordingSink>();
    router.chat_completions(chat("auto", set[i].first), test::request_info("c" + std::to_string(i)), sink);
    ASSERT_TRUE(sink->wait());
    ASSERT_FALSE(sink->failed) << sink->error.message;
    const std::string content = sink->json["choices"][0]["message"]["content"];
    EXPECT_EQ(content, (set[i].second ? "strong: " : "small: ") + set[i].first);
    escalated += content.rfind("strong", 0) == 0;
    // The client asked for no log-probabilities: the small tier's answer carries them only because
    // the router asked; they are passed on as the tier gave them.
    EXPECT_TRUE(strong.stats()["requests"].get<int>() <= escalated);
  }
  EXPECT_EQ(escalated, 4);
  EXPECT_EQ(small.stats()["requests"], 12);
  EXPECT_EQ(strong.stats()["requests"], 4);
  EXPECT_TRUE(small.stats()["bodies"][0]["logprobs"].get<bool>());
  // Outcomes for the learned policy: one per request, labeled by the escalation.
  const auto outcomes = router.store().outcomes();
  ASSERT_EQ(outcomes.size(), 12u);
  for (const auto& o : outcomes) EXPECT_EQ(o.strong, o.prompt.find("HARD") != std::string::npos) << o.prompt;
  const auto st = router.store().stats();
  EXPECT_EQ(st["tiers"]["strong"]["escalations"], 4);
}

TEST(RoutePolicies, CascadeChecksJsonAndAgreementOfSamples) {
  FakeUpstream small("small"), strong("strong");
  const std::string yaml = "tiers:\n  - name: small\n    deployments: [{url: '" + small.url() + "'}]\n  - name: strong\n    deployments: [{url: '" +
                           strong.url() + "'}]\nroutes:\n  - {model: auto, policy: cascade}\n  - {model: voted, policy: vote}\npolicies:\n"
                           "  cascade:\n    kind: cascade\n    tiers: [small, strong]\n"
                           "  vote:\n    kind: cascade\n    tiers: [small, strong]\n    samples: 3\n    min_agreement: 0.6\n";
  RouterConfig c = parse_config(yaml, "router.yaml");
  c.database = ":memory:";
  Router router(std::move(c));
  auto ask = [&](nlohmann::json req, const std::string& id) {
    auto sink = std::make_shared<RecordingSink>();
    router.chat_completions(req, test::request_info(id), sink);
    EXPECT_TRUE(sink->wait());
    return sink->json["choices"][0]["message"]["content"].get<std::string>();
  };
  nlohmann::json want_json = chat("auto", "give json");
  want_json["response_format"] = {{"type", "json_schema"},
                                  {"json_schema", {{"name", "r"}, {"schema", {{"type", "object"}, {"required", {"ok"}}}}}}};
  small.script({{{"text", "not json at all"}}});
  EXPECT_EQ(ask(want_json, "j1"), "strong: give json");
  small.script({{{"text", "{\"wrong\": 1}"}}});
  EXPECT_EQ(ask(want_json, "j2"), "strong: give json");
  small.script({{{"text", "{\"ok\": true}"}}});
  EXPECT_EQ(ask(want_json, "j3"), "{\"ok\": true}");
  // Three samples: two of three agree (0.67 >= 0.6) is accepted; all different is escalated.
  small.script({{{"text", "Paris"}}, {{"text", "paris "}}, {{"text", "Lyon"}}});
  EXPECT_EQ(ask(chat("voted", "capital?"), "v1"), "Paris");
  small.script({{{"text", "Paris"}}, {{"text", "Lyon"}}, {{"text", "Nice"}}});
  EXPECT_EQ(ask(chat("voted", "capital?"), "v2"), "strong: capital?");
  EXPECT_EQ(router.store().count_requests(), 5);
}

}  // namespace
}  // namespace slm::router
