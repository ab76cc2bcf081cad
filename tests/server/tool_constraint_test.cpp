// The constraints behind tool_choice and thinking_budget, walked at random over the demo model's
// vocabulary: whatever allowed tokens are chosen, the text is a tool call in the family's format
// whose arguments are valid against the tool's parameters, or a reasoning section that ends in time.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/model/model.hpp"
#include "slm/server/output_parser.hpp"
#include "slm/server/tool_constraint.hpp"
#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/error.hpp"
#include "../common/models.hpp"

namespace fs = std::filesystem;
using namespace slm;
using namespace slm::server;
using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

namespace {

const Tokenizer& demo_tokenizer() { return *slm_test::demo_model()->tokenizer(); }

// Two tools: bounded strings, an enum, an integer range, an optional field, and a $ref into $defs
// (which must still resolve once the schema sits inside the call's schema).
ojson tools() {
  return ojson::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
      "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 6},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "unit"], "additionalProperties": false}}},
    {"type": "function", "function": {"name": "add_item",
      "parameters": {"type": "object", "properties": {"item": {"$ref": "#/$defs/item"}},
        "required": ["item"], "additionalProperties": false,
        "$defs": {"item": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}[0-9]{2}$"},
                                                            "qty": {"type": "integer", "minimum": 1, "maximum": 99}},
                           "required": ["sku", "qty"], "additionalProperties": false}}}}}
  ])");
}

struct Walk {
  std::string text;
  size_t tokens = 0;
  bool ended = false;  // an end-of-generation token or finished()
  size_t think_end_at = 0;  // tokens when "</think>" first appeared (0: never)
};

// Chooses allowed tokens at random (end-of-generation half of the time it is allowed) until the
// constraint is finished, an end token is chosen, or `limit` tokens.
Walk walk(TokenConstraint& c, const Tokenizer& tok, uint32_t seed, size_t limit = 600) {
  std::mt19937 rng(seed);
  Walk w;
  std::vector<uint8_t> mask(tok.vocab_size());
  while (w.tokens < limit) {
    if (c.finished()) {
      w.ended = true;
      break;
    }
    c.allowed_tokens(mask);
    std::vector<int32_t> ok, eog;
    for (size_t t = 0; t < mask.size(); ++t) {
      if (mask[t] == 0) continue;
      (tok.is_eog(int32_t(t)) ? eog : ok).push_back(int32_t(t));
    }
    EXPECT_FALSE(ok.empty() && eog.empty()) << "nothing allowed after: " << w.text;
    if (ok.empty() && eog.empty()) break;
    if (!eog.empty()) EXPECT_TRUE(c.complete()) << w.text;
    if (!eog.empty() && (ok.empty() || rng() % 2 == 0)) {
      c.accept(eog[0]);
      w.ended = true;
      break;
    }
    const int32_t t = ok[rng() % ok.size()];
    c.accept(t);
    w.text += tok.token_bytes(t);
    ++w.tokens;
    if (w.think_end_at == 0 && w.text.find("</think>") != std::string::npos) w.think_end_at = w.tokens;
  }
  return w;
}

const ojson& tool_params(const std::string& name) {
  static const ojson all = tools();
  for (const auto& t : all) {
    if (t["function"]["name"] == name) return t["function"]["parameters"];
  }
  throw std::runtime_error("no tool " + name);
}

// Every call names a tool and its arguments are valid against that tool's parameters.
void expect_valid_calls(const ParsedToolCalls& parsed, const std::string& only = "") {
  ASSERT_FALSE(parsed.calls.empty());
  for (const auto& call : parsed.calls) {
    if (!only.empty()) EXPECT_EQ(call.name, only);
    const json args = json::parse(call.arguments);
    const auto errors = grammar::validate_json(json::parse(tool_params(call.name).dump()), args);
    EXPECT_TRUE(errors.empty()) << call.name << " " << call.arguments << ": " << (errors.empty() ? "" : errors[0]);
  }
}

}  // namespace

TEST(ToolConstraint, HermesCallsAreParsedAndValidWhateverTheChoices) {
  const Tokenizer& tok = demo_tokenizer();
  ToolConstraintOptions o;
  o.format = ToolCallFormat::hermes;
  auto c = tool_call_constraint(tools(), tok, o);
  std::set<std::string> names;
  for (uint32_t seed = 1; seed <= 24; ++seed) {
    auto fresh = c->clone_initial();
    const Walk w = walk(*fresh, tok, seed);
    ASSERT_TRUE(w.ended) << w.text;
    EXPECT_EQ(w.text.rfind("<tool_call>\n{", 0), 0u) << w.text;
    EXPECT_TRUE(w.text.ends_with("\n</tool_call>")) << w.text;
    const ParsedToolCalls parsed = parse_tool_calls(w.text);
    expect_valid_calls(parsed);
    EXPECT_EQ(parsed.content, "") << w.text;
    for (const auto& call : parsed.calls) names.insert(call.name);
  }
  EXPECT_EQ(names.size(), 2u);  // both tools come up
}

TEST(ToolConstraint, NamedToolOnlyAndOneCallWithoutParallel) {
  const Tokenizer& tok = demo_tokenizer();
  ToolConstraintOptions o;
  o.only_tool = "add_item";
  o.parallel = false;
  auto c = tool_call_constraint(tools(), tok, o);
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    auto fresh = c->clone_initial();
    const Walk w = walk(*fresh, tok, seed);
    ASSERT_TRUE(w.ended) << w.text;
    EXPECT_TRUE(fresh->finished());
    const ParsedToolCalls parsed = parse_tool_calls(w.text);
    ASSERT_EQ(parsed.calls.size(), 1u) << w.text;
    expect_valid_calls(parsed, "add_item");
  }
}

TEST(ToolConstraint, Llama3AndMistralFormats) {
  const Tokenizer& tok = demo_tokenizer();
  for (ToolCallFormat format : {ToolCallFormat::llama3, ToolCallFormat::mistral}) {
    ToolConstraintOptions o;
    o.format = format;
    auto c = tool_call_constraint(tools(), tok, o);
    for (uint32_t seed = 1; seed <= 10; ++seed) {
      auto fresh = c->clone_initial();
      const Walk w = walk(*fresh, tok, seed);
      ASSERT_TRUE(w.ended) << w.text;
      if (format == ToolCallFormat::llama3) {
        EXPECT_NE(w.text.find("\"parameters\""), std::string::npos) << w.text;
      } else {
        EXPECT_EQ(w.text.rfind("[TOOL_CALLS][", 0), 0u) << w.text;
      }
      expect_valid_calls(parse_tool_calls(w.text));
    }
  }
}

TEST(ToolConstraint, ReasoningFirstThenTheCall) {
  const Tokenizer& tok = demo_tokenizer();
  ToolConstraintOptions o;
  o.start_in_reasoning = true;
  o.thinking_budget = 6;
  o.parallel = false;
  auto c = tool_call_constraint(tools(), tok, o);
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    auto fresh = c->clone_initial();
    const Walk w = walk(*fresh, tok, seed);
    ASSERT_TRUE(w.ended) << w.text;
    const size_t end = w.text.find("</think>\n\n<tool_call>\n");
    ASSERT_NE(end, std::string::npos) << w.text;
    ReasoningSplitter split(true);
    auto out = split.push(w.text);
    auto rest = split.flush();
    out.reasoning += rest.reasoning;
    out.content += rest.content;
    EXPECT_EQ(out.reasoning, w.text.substr(0, end)) << w.text;
    expect_valid_calls(parse_tool_calls(out.content));
  }
}

TEST(ToolConstraint, ThinkingBudgetForcesTheEndOfReasoning) {
  const Tokenizer& tok = demo_tokenizer();
  const std::vector<int32_t> end_tokens = tok.encode("</think>", false, true);
  for (int64_t budget : {0, 1, 5, 20}) {
    auto c = reasoning_constraint(tok, budget, nullptr);
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      auto fresh = c->clone_initial();
      const Walk w = walk(*fresh, tok, seed, size_t(budget) + end_tokens.size() + 30);
      const size_t end = w.text.find("</think>\n\n");
      ASSERT_NE(end, std::string::npos) << budget << ": " << w.text;
      // At most `budget` free tokens, then the end text's tokens.
      EXPECT_GT(w.think_end_at, 0u);
      EXPECT_LE(w.think_end_at, size_t(budget) + end_tokens.size()) << w.text;
    }
  }
  // Then a JSON answer: the content after the reasoning is the schema's.
  auto json_c = grammar::compile_json_schema(json::parse(R"({"type":"object","properties":{"ok":{"type":"boolean"}},
                                                             "required":["ok"],"additionalProperties":false})"), tok);
  auto c = reasoning_constraint(tok, 3, json_c);
  const Walk w = walk(*c, tok, 7);
  ASSERT_TRUE(w.ended) << w.text;
  const size_t end = w.text.find("</think>\n\n");
  ASSERT_NE(end, std::string::npos) << w.text;
  const json answer = json::parse(w.text.substr(end + 10));
  EXPECT_TRUE(answer["ok"].is_boolean()) << w.text;
}

TEST(ToolConstraint, RejectsTokensItDidNotAllow) {
  const Tokenizer& tok = demo_tokenizer();
  auto c = tool_call_constraint(tools(), tok, ToolConstraintOptions{});
  const std::vector<int32_t> prefix = tok.encode("<tool_call>\n", false, true);
  ASSERT_FALSE(prefix.empty());
  const int32_t wrong = tok.encode("Hello", false, false).at(0);
  ASSERT_NE(wrong, prefix[0]);
  EXPECT_THROW(c->accept(wrong), Error);
  EXPECT_THROW(tool_call_constraint(ojson::array(), tok, ToolConstraintOptions{}), Error);
  ToolConstraintOptions named;
  named.only_tool = "missing";
  EXPECT_THROW(tool_call_constraint(tools(), tok, named), Error);
  // Parameters the schema compiler does not support are an error, not ignored.
  ojson bad = tools();
  bad[0]["function"]["parameters"]["properties"]["city"]["contentEncoding"] = "base64";
  EXPECT_THROW(tool_call_constraint(bad, tok, ToolConstraintOptions{}), Error);
}

TEST(ToolConstraint, FormatFromTheTemplate) {
  const Tokenizer& tok = demo_tokenizer();
  EXPECT_EQ(tool_call_format("{{ '<tool_call>' }}", tok), ToolCallFormat::hermes);
  EXPECT_EQ(tool_call_format("{{ '[TOOL_CALLS]' }}", tok), ToolCallFormat::mistral);
  EXPECT_EQ(tool_call_format("<|python_tag|>{{ x }}<|eot_id|>", tok), ToolCallFormat::llama3);
  EXPECT_EQ(tool_call_format("<|im_start|>", tok), ToolCallFormat::hermes);
}

namespace {

// Feeds `tokens` to the constraint, each checked against the mask first; returns how many were
// allowed and accepted before the first refused one.
size_t feed(TokenConstraint& c, const Tokenizer& tok, const std::vector<int32_t>& tokens) {
  std::vector<uint8_t> mask(tok.vocab_size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    c.allowed_tokens(mask);
    if (mask[size_t(tokens[i])] == 0) return i;
    c.accept(tokens[i]);
  }
  return tokens.size();
}

bool eog_allowed(TokenConstraint& c, const Tokenizer& tok) {
  std::vector<uint8_t> mask(tok.vocab_size());
  c.allowed_tokens(mask);
  for (int32_t id : tok.data().eog_ids) {
    if (id >= 0 && size_t(id) < mask.size() && mask[size_t(id)] != 0) return true;
  }
  return false;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

constexpr const char* llama_call_1 = R"({"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}})";
constexpr const char* llama_call_2 = R"({"name": "add_item", "parameters": {"item": {"sku": "ABC12", "qty": 3}}})";

}  // namespace

TEST(ToolConstraint, Llama3AcceptsTwoCallsSeparatedBySemicolon) {
  const Tokenizer& tok = demo_tokenizer();
  ToolConstraintOptions o;
  o.format = ToolCallFormat::llama3;
  auto c = tool_call_constraint(tools(), tok, o);
  const auto first = tok.encode(llama_call_1, false, false);
  const auto sep = tok.encode("; ", false, true);
  const auto second = tok.encode(llama_call_2, false, false);
  auto fresh = c->clone_initial();
  ASSERT_EQ(feed(*fresh, tok, first), first.size());
  EXPECT_TRUE(fresh->complete());
  EXPECT_TRUE(eog_allowed(*fresh, tok));  // one call may be the whole answer
  ASSERT_EQ(feed(*fresh, tok, sep), sep.size());
  EXPECT_FALSE(fresh->complete());  // a separator must be followed by a call
  EXPECT_FALSE(eog_allowed(*fresh, tok));
  ASSERT_EQ(feed(*fresh, tok, second), second.size());
  EXPECT_TRUE(fresh->complete());
  EXPECT_TRUE(eog_allowed(*fresh, tok));
  ASSERT_EQ(feed(*fresh, tok, sep), sep.size());  // and a third may follow
  const ParsedToolCalls parsed = parse_tool_calls(std::string(llama_call_1) + "; " + llama_call_2);
  ASSERT_EQ(parsed.calls.size(), 2u);
  expect_valid_calls(parsed);
}

TEST(ToolConstraint, Llama3RejectsABrokenSeparatorAndASecondCallWithoutParallel) {
  const Tokenizer& tok = demo_tokenizer();
  ToolConstraintOptions o;
  o.format = ToolCallFormat::llama3;
  auto c = tool_call_constraint(tools(), tok, o);
  const auto first = tok.encode(llama_call_1, false, false);
  const auto second = tok.encode(llama_call_2, false, false);
  for (const char* broken : {", ", " ", "\n", ";;"}) {
    auto fresh = c->clone_initial();
    ASSERT_EQ(feed(*fresh, tok, first), first.size());
    const auto bad = concat({tok.encode(broken, false, true), second});
    EXPECT_LT(feed(*fresh, tok, bad), bad.size()) << "accepted separator '" << broken << "'";
  }
  {  // The separator never comes first, and is not accepted without a call before it.
    auto fresh = c->clone_initial();
    const auto sep_first = concat({tok.encode("; ", false, true), first});
    EXPECT_EQ(feed(*fresh, tok, sep_first), 0u);
    EXPECT_THROW(fresh->accept(sep_first[0]), Error);
  }
  // parallel_tool_calls false: exactly one call, then only the end.
  o.parallel = false;
  auto single = tool_call_constraint(tools(), tok, o);
  auto fresh = single->clone_initial();
  ASSERT_EQ(feed(*fresh, tok, first), first.size());
  EXPECT_TRUE(eog_allowed(*fresh, tok));
  const auto sep = tok.encode("; ", false, true);
  EXPECT_EQ(feed(*fresh, tok, sep), 0u);
}

TEST(ToolConstraint, Llama3ParallelWalksGiveSeveralValidCalls) {
  const Tokenizer& tok = demo_tokenizer();
  for (bool reasoning : {false, true}) {
    ToolConstraintOptions o;
    o.format = ToolCallFormat::llama3;
    o.start_in_reasoning = reasoning;
    o.thinking_budget = reasoning ? 4 : -1;
    auto c = tool_call_constraint(tools(), tok, o);
    size_t most = 0;
    for (uint32_t seed = 1; seed <= 16; ++seed) {
      auto fresh = c->clone_initial();
      const Walk w = walk(*fresh, tok, seed, 2000);
      ASSERT_TRUE(w.ended) << w.text;
      std::string answer = w.text;
      if (reasoning) {
        const size_t end = answer.find("</think>\n\n");
        ASSERT_NE(end, std::string::npos) << w.text;
        answer = answer.substr(end + 10);
      }
      ASSERT_EQ(answer.rfind("{\"name\":", 0), 0u) << w.text;
      const ParsedToolCalls parsed = parse_tool_calls(answer);
      expect_valid_calls(parsed);
      EXPECT_EQ(parsed.content, "") << w.text;
      // n calls: n - 1 separators between them.
      size_t seps = 0;
      for (size_t at = answer.find("}; {\"name\":"); at != std::string::npos; at = answer.find("}; {\"name\":", at + 1)) ++seps;
      EXPECT_EQ(seps + 1, parsed.calls.size()) << w.text;
      most = std::max(most, parsed.calls.size());
    }
    EXPECT_GE(most, 2u) << "no walk made more than one call";
  }
}

TEST(ToolConstraint, SplitsParallelCallsIntoSingleCallTurnsWithTheirResults) {
  const ojson messages = ojson::parse(R"([
    {"role": "user", "content": "Weather in Paris and Oslo?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
      {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
      {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
    {"role": "tool", "tool_call_id": "b", "content": "cold"},
    {"role": "tool", "content": "warm"},
    {"role": "tool", "tool_call_id": "a", "content": "mild"},
    {"role": "tool", "tool_call_id": "zzz", "content": "stray"},
    {"role": "user", "content": "Thanks"}
  ])");
  EXPECT_TRUE(has_parallel_tool_calls(messages));
  const ojson out = one_call_per_turn(messages);
  EXPECT_FALSE(has_parallel_tool_calls(out));
  std::vector<std::string> seen;
  for (const auto& m : out) {
    if (m.contains("tool_calls")) seen.push_back("call " + m["tool_calls"][0]["id"].get<std::string>());
    else seen.push_back(m["role"].get<std::string>() + " " + m["content"].get<std::string>());
  }
  const std::vector<std::string> expected = {"user Weather in Paris and Oslo?", "call a", "tool mild", "call b", "tool cold",
                                             "call c", "tool warm", "tool stray", "user Thanks"};
  EXPECT_EQ(seen, expected);
  const ojson plain = ojson::parse(R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])");
  EXPECT_FALSE(has_parallel_tool_calls(plain));
  EXPECT_EQ(one_call_per_turn(plain), plain);
}

// Meta's Llama 3.2 template refuses an assistant message with several calls; split into single-call
// turns with their results, the conversation renders, each call followed by its ipython result
// (which this template writes as JSON: a string content is iterable to Jinja).
TEST(ToolConstraint, ParallelCallsRenderThroughTheLlama32TemplateOncePerTurn) {
  std::ifstream in(fs::path(SLM_TEST_DATA) / "chat_templates" / "llama3_2.jinja", std::ios::binary);
  ASSERT_TRUE(in.good());
  const std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const ChatTemplate tmpl = ChatTemplate::parse(source);
  const ojson messages = ojson::parse(R"([
    {"role": "user", "content": "Weather in Paris and Oslo?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "p", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}},
      {"id": "o", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}}]},
    {"role": "tool", "tool_call_id": "o", "content": "snow"},
    {"role": "tool", "tool_call_id": "p", "content": "sun"}
  ])");
  const ojson tool_list = tools();
  const TokenizerData& data = demo_tokenizer().data();
  EXPECT_THROW(tmpl.render(chat_context(data, messages, &tool_list, true, std::nullopt)), Error);
  const std::string text = tmpl.render(chat_context(data, one_call_per_turn(messages), &tool_list, true, std::nullopt));
  const std::string turn = "<|start_header_id|>assistant<|end_header_id|>\n\n";
  const std::string result = "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n";
  const size_t paris = text.find(turn + R"({"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}})" + result + "\"sun\"<|eot_id|>");
  const size_t oslo = text.find(turn + R"({"name": "get_weather", "parameters": {"city": "Oslo", "unit": "celsius"}})" + result + "\"snow\"<|eot_id|>");
  ASSERT_NE(paris, std::string::npos) << text;
  ASSERT_NE(oslo, std::string::npos) << text;
  EXPECT_LT(paris, oslo);
  EXPECT_TRUE(text.ends_with(turn)) << text;
}
