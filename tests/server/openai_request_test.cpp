// Request validation: every field of the wrong type or out of range is a 400 naming the field.
#include <gtest/gtest.h>

#include "slm/server/errors.hpp"
#include "slm/server/openai_request.hpp"

using namespace slm::server;
using json = nlohmann::json;

namespace {

json chat(json extra = json::object()) {
  json r = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  for (auto& [k, v] : extra.items()) r[k] = v;
  return r;
}

// The param of the ApiException that parse throws, or "(none)" when it accepts the request.
template <class F>
std::string rejected_param(F&& parse) {
  try {
    parse();
  } catch (const ApiException& e) {
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().type, "invalid_request_error");
    EXPECT_FALSE(e.error().message.empty());
    return e.error().param;
  }
  return "(none)";
}

}  // namespace

TEST(OpenAIRequest, ValidChatRequestParses) {
  const auto r = parse_chat_request(chat({{"n", 2},
                                          {"stop", json::array({"a", "b"})},
                                          {"max_completion_tokens", 7},
                                          {"temperature", 0},
                                          {"top_p", 0.5},
                                          {"seed", 42},
                                          {"logprobs", true},
                                          {"top_logprobs", 3},
                                          {"stream", true},
                                          {"stream_options", {{"include_usage", true}}},
                                          {"presence_penalty", 1.5},
                                          {"frequency_penalty", -1}}));
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0.0);
  EXPECT_EQ(r.top_p, 0.5);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.presence_penalty, 1.5);
  EXPECT_EQ(r.frequency_penalty, -1.0);
  EXPECT_EQ(r.messages[0]["content"], "hi");
}

TEST(OpenAIRequest, WrongTypesAndRangesNameTheField) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"n", "2"}}, "n"},
      {{{"n", 0}}, "n"},
      {{{"n", 1.5}}, "n"},
      {{{"stop", 5}}, "stop"},
      {{{"stop", {"a", "b", "c", "d", "e"}}}, "stop"},
      {{{"stop", {"a", 1}}}, "stop"},
      {{{"max_tokens", -1}}, "max_tokens"},
      {{{"max_tokens", "many"}}, "max_tokens"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"temperature", 3}}, "temperature"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"seed", "x"}}, "seed"},
      {{{"presence_penalty", 5}}, "presence_penalty"},
      {{{"frequency_penalty", true}}, "frequency_penalty"},
      {{{"logprobs", 1}}, "logprobs"},
      {{{"top_logprobs", 3}}, "top_logprobs"},  // without logprobs
      {{{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
      {{{"stream", "yes"}}, "stream"},
      {{{"stream_options", 1}}, "stream_options"},
      {{{"response_format", {{"type", "xml"}}}}, "response_format.type"},
      {{{"response_format", {{"type", "json_schema"}}}}, "response_format.json_schema"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", 3}}}}}}}, "tools[0].function.name"},
      {{{"tool_choice", "sometimes"}}, "tool_choice"},
      {{{"model", 7}}, "model"},
      {{{"messages", "hi"}}, "messages"},
      {{{"messages", json::array()}}, "messages"},
      {{{"messages", {{{"role", "robot"}, {"content", "x"}}}}}, "messages[0].role"},
      {{{"messages", {{{"role", "user"}}}}}, "messages[0].content"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}, "messages[0].content[0].type"},
  };
  for (const auto& [extra, param] : cases) {
    EXPECT_EQ(rejected_param([&] { parse_chat_request(chat(extra)); }), param) << extra.dump();
  }
}

TEST(OpenAIRequest, ContentPartsJoinAndDeveloperIsSystem) {
  const auto r = parse_chat_request(chat(
      {{"messages",
        {{{"role", "developer"}, {"content", "rules"}},
         {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}}}}}));
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "ab");
}

TEST(OpenAIRequest, ToolCallArgumentsBecomeObjectsForTemplates) {
  const auto r = parse_chat_request(chat(
      {{"messages",
        {{{"role", "user"}, {"content", "x"}},
         {{"role", "assistant"},
          {"content", nullptr},
          {"tool_calls", {{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{\"a\":1}"}}}}}}},
         {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "2"}}}},
       {"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", json::object()}}}}}},
       {"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}}}));
  EXPECT_EQ(r.messages[1]["tool_calls"][0]["function"]["arguments"]["a"], 1);
  EXPECT_TRUE(r.messages[1]["content"].is_null());
  EXPECT_EQ(r.tool_choice, ToolChoice::named);
  EXPECT_EQ(r.tool_choice_name, "f");
  EXPECT_EQ(rejected_param([&] {
              parse_chat_request(chat({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}},
                                       {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}}));
            }),
            "tool_choice");
}

TEST(OpenAIRequest, ToolSchemasKeepTheirKeyOrder) {
  const std::string body =
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"zeta":{},"alpha":{}}}}}]})";
  const json parsed = json::parse(body);
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(body);
  const auto r = parse_chat_request(parsed, &ordered);
  EXPECT_EQ(r.tools[0]["function"]["parameters"]["properties"].begin().key(), "zeta");
}

TEST(OpenAIRequest, CompletionPrompts) {
  auto r = parse_completion_request({{"prompt", json::array({"a", "b"})}, {"logprobs", 2}, {"echo", true}, {"max_tokens", 0}});
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[1].text, "b");
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_EQ(r.max_tokens, 0);
  auto tokens = parse_completion_request({{"prompt", {1, 2, 3}}});
  ASSERT_EQ(tokens.prompts.size(), 1u);
  EXPECT_EQ(tokens.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  auto lists = parse_completion_request({{"prompt", {{1, 2}, {3}}}});
  EXPECT_EQ(lists.prompts.size(), 2u);
  EXPECT_EQ(rejected_param([] { parse_completion_request({{"model", "m"}}); }), "prompt");
  EXPECT_EQ(rejected_param([] { parse_completion_request({{"prompt", 5}}); }), "prompt");
  EXPECT_EQ(rejected_param([] { parse_completion_request({{"prompt", {1, -2}}}); }), "prompt");
  EXPECT_EQ(rejected_param([] { parse_completion_request({{"prompt", "x"}, {"max_tokens", 0}}); }), "max_tokens");
  EXPECT_EQ(rejected_param([] { parse_completion_request({{"prompt", "x"}, {"logprobs", true}}); }), "logprobs");
  EXPECT_EQ(rejected_param([] { parse_completion_request({{"prompt", "x"}, {"suffix", "y"}}); }), "suffix");
  EXPECT_EQ(rejected_param([] { parse_completion_request(json::array()); }), "");
}

TEST(OpenAIRequest, EmbeddingInputs) {
  auto r = parse_embedding_request({{"input", json::array({"a", "b"})}, {"encoding_format", "base64"}});
  EXPECT_EQ(r.inputs.size(), 2u);
  EXPECT_TRUE(r.base64);
  EXPECT_EQ(rejected_param([] { parse_embedding_request({{"input", json::array()}}); }), "input");
  EXPECT_EQ(rejected_param([] { parse_embedding_request({{"input", json::array({json{{"nested", 1}}})}}); }), "input[0]");
  EXPECT_EQ(rejected_param([] { parse_embedding_request({{"input", "a"}, {"encoding_format", "hex"}}); }), "encoding_format");
}

TEST(OpenAIRequest, ErrorsHaveOpenAIShape) {
  const auto e = make_error(404, "invalid_request_error", "no such model", "model", "model_not_found").to_json();
  EXPECT_EQ(e["error"]["message"], "no such model");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "model");
  EXPECT_EQ(e["error"]["code"], "model_not_found");
  const auto bare = make_error(500, "server_error", "x").to_json();
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_TRUE(bare["error"]["code"].is_null());
  EXPECT_EQ(error_from(slm::Error(slm::ErrorKind::not_found, "gone")).status, 404);
  EXPECT_EQ(error_from(slm::Error(slm::ErrorKind::invalid_argument, "bad")).status, 400);
  EXPECT_EQ(error_from(slm::Error(slm::ErrorKind::internal, "bug")).status, 500);
}

TEST(OpenAIRequest, ResponseFormatSchemaKeepsPropertyOrder) {
  const std::string body =
      R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}}}}})";
  const json parsed = json::parse(body);
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(body);
  const auto r = parse_chat_request(parsed, &ordered);
  EXPECT_EQ(r.response_format.kind, ResponseFormatKind::json_schema);
  EXPECT_EQ(r.response_format.name, "s");
  EXPECT_EQ(r.response_format.schema["properties"].begin().key(), "zeta");
  const auto plain = parse_chat_request(parsed);
  EXPECT_EQ(plain.response_format.schema["properties"].begin().key(), "alpha");  // sorted without the ordered body
  const auto object = parse_chat_request(chat({{"response_format", {{"type", "json_object"}}}}));
  EXPECT_EQ(object.response_format.kind, ResponseFormatKind::json_object);
}

TEST(OpenAIRequest, TimeoutAndThinkingBudgetExtensions) {
  const ChatRequest r = parse_chat_request(chat({{"timeout", 2.5}, {"thinking_budget", 64}}));
  ASSERT_TRUE(r.timeout.has_value());
  EXPECT_DOUBLE_EQ(*r.timeout, 2.5);
  ASSERT_TRUE(r.thinking_budget.has_value());
  EXPECT_EQ(*r.thinking_budget, 64);
  const ChatRequest plain = parse_chat_request(chat());
  EXPECT_FALSE(plain.timeout.has_value());
  EXPECT_FALSE(plain.thinking_budget.has_value());
  EXPECT_EQ(rejected_param([] { parse_chat_request(chat({{"timeout", 0}})); }), "timeout");
  EXPECT_EQ(rejected_param([] { parse_chat_request(chat({{"timeout", -1}})); }), "timeout");
  EXPECT_EQ(rejected_param([] { parse_chat_request(chat({{"timeout", "5"}})); }), "timeout");
  EXPECT_EQ(rejected_param([] { parse_chat_request(chat({{"thinking_budget", -1}})); }), "thinking_budget");
  EXPECT_EQ(rejected_param([] { parse_chat_request(chat({{"thinking_budget", 1.5}})); }), "thinking_budget");
  const CompletionRequest c = parse_completion_request(json{{"prompt", "x"}, {"timeout", 1}});
  ASSERT_TRUE(c.timeout.has_value());
  EXPECT_DOUBLE_EQ(*c.timeout, 1.0);
}
