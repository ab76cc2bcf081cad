// The task endpoints end to end: `slm serve` on the demo model (directly and behind a router
// configuration with a task rule), spoken to over HTTP.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

#include "../server/server_process.hpp"
#include "slm/engine/grammar/json_schema.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Code points of UTF-8 text, decoded independently of the library.
std::u32string code_points(const std::string& text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + size_t(k)]) & 0x3F);
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

class TaskHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = std::make_unique<slm_test::ServerProcess>(
        std::vector<std::string>{slm_test::demo_model(), "--ctx", "512", "--parallel", "4"});
  }
  static void TearDownTestSuite() { server_.reset(); }

  static slm_test::HttpResponse post(const std::string& path, const json& body) {
    return slm_test::http(server_->port(), "POST", path, body.dump());
  }
  // A 400 error in OpenAI's shape naming `param`.
  static void expect_400(const std::string& path, const std::string& body, const std::string& param,
                         const std::string& code = "") {
    auto r = slm_test::http(server_->port(), "POST", path, body);
    EXPECT_EQ(r.status, 400) << path << " " << body << " -> " << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << r.body;
    EXPECT_EQ(j["error"]["param"], param.empty() ? json(nullptr) : json(param)) << r.body;
    EXPECT_EQ(j["error"]["code"], code.empty() ? json(nullptr) : json(code)) << r.body;
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }

  static std::unique_ptr<slm_test::ServerProcess> server_;
};

std::unique_ptr<slm_test::ServerProcess> TaskHttp::server_;

TEST_F(TaskHttp, RedactFindsRuleEntitiesWithCodePointOffsets) {
  const std::string text = "Zoë: mail zoë.k@shop.example, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, ip 10.0.0.7.";
  auto r = post("/v1/redact", {{"input", {text, "nothing here"}}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  ASSERT_EQ(j["data"].size(), 2u);
  const json& first = j["data"][0];
  EXPECT_EQ(first["index"], 0);
  const std::u32string cps = code_points(text);
  std::map<std::string, std::u32string> by_type;
  for (const auto& e : first["entities"]) {
    const int64_t s = e["start"], en = e["end"];
    ASSERT_TRUE(s >= 0 && s < en && en <= int64_t(cps.size())) << e;
    by_type[e["type"]] = cps.substr(size_t(s), size_t(en - s));
  }
  EXPECT_EQ(by_type["CREDIT_CARD"], U"4111 1111 1111 1111");
  EXPECT_EQ(by_type["IBAN"], U"DE89 3704 0044 0532 0130 00");
  EXPECT_EQ(by_type["IP_ADDRESS"], U"10.0.0.7");
  EXPECT_EQ(first["text"].get<std::string>().find("4111"), std::string::npos) << first["text"];
  EXPECT_NE(first["text"].get<std::string>().find("<CREDIT_CARD>"), std::string::npos) << first["text"];
  EXPECT_TRUE(j["data"][1]["entities"].empty());
  EXPECT_EQ(j["data"][1]["text"], "nothing here");

  // Only the types asked for, masked.
  auto masked = post("/v1/redact", {{"input", "card 4111 1111 1111 1111 or 10.0.0.7"}, {"entities", {"IP_ADDRESS"}}, {"operator", "mask"}});
  ASSERT_EQ(masked.status, 200) << masked.body;
  const json m = json::parse(masked.body)["data"][0];
  EXPECT_EQ(m["text"], "card 4111 1111 1111 1111 or ********");
  ASSERT_EQ(m["entities"].size(), 1u);
  EXPECT_EQ(m["entities"][0]["type"], "IP_ADDRESS");
}

TEST_F(TaskHttp, ClassifyGivesTheSameProbabilitiesAsTheCommand) {
  const std::vector<std::string> texts = {"The payment server is down and customers cannot pay!", "Win a free cruise, click now"};
  auto r = post("/v1/classify", {{"input", texts}, {"labels", {"urgent", "normal", "spam"}}, {"decode", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int64_t>(), 0);

  // The same texts through `slm classify` (in process, prompt and label tokenized apart).
  const fs::path input = fs::temp_directory_path() / ("slm_task_http_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream out(input);
    for (const auto& t : texts) out << json{{"text", t}}.dump() << "\n";
  }
  const std::string cmd = std::string(SLM_EXE) + " classify -q --no-decode --labels urgent,normal,spam " + input.string() + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  ASSERT_EQ(WEXITSTATUS(pclose(p)), 0) << out;
  fs::remove(input);
  std::vector<json> cli;
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t eol = out.find('\n', pos);
    cli.push_back(json::parse(out.substr(pos, eol - pos)));
    pos = eol == std::string::npos ? out.size() : eol + 1;
  }
  ASSERT_EQ(cli.size(), 2u) << out;

  for (size_t i = 0; i < 2; ++i) {
    const json& d = j["data"][i];
    EXPECT_EQ(d["index"], i);
    double sum = 0.0, best = -1.0;
    std::string best_label;
    for (const std::string label : {"urgent", "normal", "spam"}) {
      const double prob = d["probs"][label];
      sum += prob;
      if (prob > best) best = prob, best_label = label;
      EXPECT_NEAR(prob, cli[i]["probs"][label].get<double>(), 1e-6) << label << " " << d << " vs " << cli[i];
      EXPECT_LT(d["logprobs"][label].get<double>(), 0.0);
    }
    EXPECT_NEAR(sum, 1.0, 1e-9);
    EXPECT_EQ(d["label"], best_label);
    EXPECT_EQ(d["label"], cli[i]["label"]);
    ASSERT_TRUE(d["decoded"].is_string()) << d;
    const std::string decoded = d["decoded"];
    EXPECT_TRUE(decoded == "urgent" || decoded == "normal" || decoded == "spam") << decoded;
  }
}

TEST_F(TaskHttp, ExtractOutputsValidateAgainstTheirSchemas) {
  const json schema = json::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "maxLength": 16},
      "priority": {"enum": ["low", "high"]},
      "contact": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
                  "required": ["city", "age"], "additionalProperties": false},
      "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 2}
    },
    "required": ["name", "priority", "contact", "tags"],
    "additionalProperties": false
  })");
  const std::vector<std::string> texts = {"Anna Weber (34) from Berlin needs the invoice today.", "Paul, Paris, no rush.",
                                          "Ticket from Lucía in Madrid about a refund."};
  auto r = post("/v1/extract", {{"input", texts}, {"schema", schema}, {"max_tokens", 160}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  ASSERT_EQ(j["data"].size(), texts.size());
  for (const auto& d : j["data"]) {
    ASSERT_TRUE(d["valid"].get<bool>()) << d;
    EXPECT_TRUE(slm::grammar::validate_json(schema, d["value"]).empty()) << d;
    EXPECT_TRUE(d["errors"].empty()) << d;
    EXPECT_GE(d["attempts"].get<int>(), 1);
  }
}

TEST_F(TaskHttp, ChunkSlicesTheInputWithinTheTokenLimit) {
  const std::string text =
      "# Guide\n\nThe first paragraph says what the guide is for. It has two sentences.\n\n"
      "## Setup\n\nInstall the package, then run the command. Check the output for errors.\n\n"
      "```\nmake all\nmake test\n```\n\n## Use\n\nCall the function with a file name.\n";
  auto r = post("/v1/chunk", {{"input", text}, {"max_tokens", 24}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json chunks = json::parse(r.body)["data"][0]["chunks"];
  ASSERT_GE(chunks.size(), 3u) << r.body;
  const std::u32string cps = code_points(text);
  bool saw_setup = false;
  for (const auto& c : chunks) {
    const int64_t s = c["start"], e = c["end"];
    ASSERT_TRUE(s >= 0 && s < e && e <= int64_t(cps.size())) << c;
    EXPECT_EQ(code_points(c["text"].get<std::string>()), cps.substr(size_t(s), size_t(e - s))) << c;
    EXPECT_LE(c["tokens"].get<int64_t>(), 24) << c;
    if (c["section"] == json({"Guide", "Setup"})) saw_setup = true;
  }
  EXPECT_TRUE(saw_setup) << r.body;

  // Semantic breakpoints embed each sentence through the engine's /v1/embeddings.
  auto semantic = post("/v1/chunk", {{"input", text}, {"by", "semantic"}, {"max_tokens", 48}, {"percentile", 0.5}});
  ASSERT_EQ(semantic.status, 200) << semantic.body;
  const json sem = json::parse(semantic.body)["data"][0]["chunks"];
  ASSERT_GE(sem.size(), 2u) << semantic.body;
  int64_t covered = 0;
  for (const auto& c : sem) {
    EXPECT_EQ(code_points(c["text"].get<std::string>()), cps.substr(size_t(c["start"].get<int64_t>()), size_t(c["end"].get<int64_t>() - c["start"].get<int64_t>()))) << c;
    EXPECT_LE(c["tokens"].get<int64_t>(), 48) << c;
    EXPECT_GE(c["start"].get<int64_t>(), covered) << c;  // in order, not overlapping
    covered = c["end"];
  }

  auto windows = post("/v1/chunk", {{"input", {"one two three four five six seven eight nine ten", "a b"}}, {"by", "tokens"},
                                    {"max_tokens", 4}, {"overlap", 1}, {"return_text", false}});
  ASSERT_EQ(windows.status, 200) << windows.body;
  const json w = json::parse(windows.body)["data"];
  ASSERT_EQ(w.size(), 2u);
  EXPECT_GE(w[0]["chunks"].size(), 3u);
  EXPECT_FALSE(w[0]["chunks"][0].contains("text"));
}

TEST_F(TaskHttp, BadRequestsAreClear400s) {
  expect_400("/v1/redact", R"({"text": "no input field"})", "input");
  expect_400("/v1/redact", R"({"input": 5})", "input");
  expect_400("/v1/redact", R"({"input": ["ok", 7]})", "input[1]");
  expect_400("/v1/redact", R"({"input": []})", "input");
  expect_400("/v1/redact", R"({"input": "x", "entities": ["EMAIL", "SHOE_SIZE"]})", "entities[1]");
  expect_400("/v1/redact", R"({"input": "x", "operator": "shred"})", "operator");
  expect_400("/v1/redact", R"({"input": "x", "min_score": 2})", "min_score");
  expect_400("/v1/redact", R"([1, 2])", "");
  expect_400("/v1/redact", "{\"input\": \"bad \xff byte\"}", "");  // not even JSON: the front's 400
  expect_400("/v1/classify", R"({"input": "x"})", "labels");
  expect_400("/v1/classify", R"({"input": "x", "labels": ["a"]})", "labels");
  expect_400("/v1/classify", R"({"input": "x", "labels": ["a", "a"]})", "labels[1]");
  expect_400("/v1/classify", R"({"input": "x", "labels": ["a", ""]})", "labels[1]");
  expect_400("/v1/classify", R"({"input": "x", "labels": ["a", "b"], "prompt_template": "no slot"})", "prompt_template");
  expect_400("/v1/classify", R"({"input": "x", "labels": ["a", "b"], "chat": true})", "chat", "unsupported");
  expect_400("/v1/extract", R"({"input": "x"})", "schema");
  expect_400("/v1/extract", R"({"input": "x", "schema": {"type": "strin"}})", "schema", "invalid_schema");
  expect_400("/v1/extract", R"({"input": "x", "schema": {"type": "object"}, "max_tokens": 0})", "max_tokens");
  expect_400("/v1/chunk", R"({"input": "x", "max_tokens": 8, "overlap": 8})", "overlap");
  expect_400("/v1/chunk", R"({"input": "x", "by": "pages"})", "by");

  // Other routes still reach the engine; a task path answers only POST.
  auto models = slm_test::http(server_->port(), "GET", "/v1/models");
  EXPECT_EQ(models.status, 200) << models.body;
  auto get = slm_test::http(server_->port(), "GET", "/v1/classify");
  EXPECT_EQ(get.status, 405) << get.body;
  auto unknown = slm_test::http(server_->port(), "POST", "/v1/summarize", "{}");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
}

TEST_F(TaskHttp, AClientThatGoesAwayStopsItsTask) {
  // 256 texts would keep the engine busy for many seconds; the client leaves once they run.
  std::vector<std::string> texts(256, "Subject: Cannot log in\nSince this morning the portal says my password is wrong.");
  const std::string body = json{{"input", texts}, {"labels", {"urgent", "normal", "spam"}}}.dump();
  const int fd = slm_test::connect_to(server_->port());
  slm_test::send_all(fd, slm_test::request_text("POST", "/v1/classify", body));
  auto prompt_tokens = [] {
    return slm_test::metric(slm_test::http(server_->port(), "GET", "/metrics").body, "slm_prompt_tokens_total");
  };
  const double before = prompt_tokens();
  const auto start = std::chrono::steady_clock::now();
  while (prompt_tokens() <= before && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(prompt_tokens(), before) << "the task never reached the engine";
  ::close(fd);
  // The engine settles (an empty queue and no growth over half a second) long before 256 texts
  // could be scored. Cancellations take effect between scheduler steps, and a step on a loaded
  // machine can outlast half a second, so an unchanged counter alone does not mean settled.
  const auto closed = std::chrono::steady_clock::now();
  double last = prompt_tokens();
  double queued = -1;
  while (std::chrono::steady_clock::now() - closed < std::chrono::seconds(15)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const std::string metrics = slm_test::http(server_->port(), "GET", "/metrics").body;
    const double now = slm_test::metric(metrics, "slm_prompt_tokens_total");
    queued = slm_test::metric(metrics, "slm_queue_depth");
    if (now == last && queued == 0) break;
    last = now;
  }
  // Every text costs three prompts of about 30 tokens: all 256 would add over 20,000.
  EXPECT_LT(last - before, 10000) << "the task went on after its client left";
  EXPECT_EQ(queued, 0) << "cancelled requests stayed in the queue";
  // The server goes on answering tasks.
  auto after = post("/v1/redact", {{"input", "mail a@b.example"}});
  EXPECT_EQ(after.status, 200) << after.body;
}

TEST(TaskHttpRouter, TaskRequestsFollowTheRoutersTaskRules) {
  const fs::path dir = fs::temp_directory_path() / ("slm_task_router_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string demo = slm_test::demo_model();
  std::ofstream(dir / "router.yaml") << "tiers:\n"
                                        "  - name: small\n    deployments: [{model: '" << demo << "'}]\n"
                                        "  - name: tagger\n    deployments: [{model: '" << demo << "'}]\n"
                                        "routes:\n  - {model: auto, policy: p}\n"
                                        "policies:\n  p:\n    kind: rules\n    rules:\n"
                                        "      - {when: {task: [classify, extract]}, tier: tagger}\n"
                                        "    default: small\n"
                                        "accounting: {database: ':memory:'}\n";
  slm_test::ServerProcess server({"--config", (dir / "router.yaml").string(), "--ctx", "512", "--parallel", "2"});
  auto c = slm_test::http(server.port(), "POST", "/v1/classify",
                          json{{"model", "auto"}, {"input", {"The server is down!", "Lunch on Friday?"}}, {"labels", {"urgent", "normal"}}}.dump());
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(json::parse(c.body)["data"].size(), 2u);
  auto chat = slm_test::http(server.port(), "POST", "/v1/chat/completions",
                             json{{"model", "auto"}, {"max_tokens", 4}, {"messages", {{{"role", "user"}, {"content", "Hello"}}}}}.dump());
  ASSERT_EQ(chat.status, 200) << chat.body;
  auto chunk = slm_test::http(server.port(), "POST", "/v1/chunk", json{{"model", "auto"}, {"input", "One. Two. Three."}, {"max_tokens", 4}}.dump());
  ASSERT_EQ(chunk.status, 200) << chunk.body;

  auto stats = slm_test::http(server.port(), "GET", "/v1/router/stats");
  ASSERT_EQ(stats.status, 200) << stats.body;
  const json st = json::parse(stats.body);
  EXPECT_EQ(st["tiers"]["tagger"]["requests"], 2) << st;  // one completions request per classified text
  EXPECT_EQ(st["tiers"]["small"]["requests"], 1) << st;   // the chat request, untagged
  fs::remove_all(dir);
}

}  // namespace
