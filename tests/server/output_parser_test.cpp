// Stop strings, reasoning and tool-call parsing on streamed text, fed in pieces of every size.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "slm/server/output_parser.hpp"

using namespace slm::server;

namespace {

// Feeds `text` in pieces of `step` bytes; returns what the matcher let through.
std::string run_stop(const std::vector<std::string>& stops, const std::string& text, size_t step, bool* stopped) {
  StopMatcher m(stops);
  std::string out;
  for (size_t i = 0; i < text.size(); i += step) out += m.push(text.substr(i, step));
  out += m.flush();
  *stopped = m.stopped();
  return out;
}

}  // namespace

TEST(StopMatcher, CutsAtTheFirstStopStringWhateverThePieces) {
  for (size_t step = 1; step <= 7; ++step) {
    bool stopped = false;
    EXPECT_EQ(run_stop({"###", "\n\n"}, "Hello world\n\nmore ### text", step, &stopped), "Hello world") << step;
    EXPECT_TRUE(stopped);
    EXPECT_EQ(run_stop({"END"}, "abc EN def ENx END tail", step, &stopped), "abc EN def ENx ") << step;
    EXPECT_TRUE(stopped);
  }
}

TEST(StopMatcher, HoldsBackAPartialMatchAndReleasesItAtTheEnd) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("go ST"), "go ");
  EXPECT_EQ(m.push("O"), "");
  EXPECT_EQ(m.push("x"), "STOx");
  EXPECT_EQ(m.push("ST"), "");
  EXPECT_EQ(m.flush(), "ST");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, NoStopsPassesEverything) {
  bool stopped = true;
  EXPECT_EQ(run_stop({}, "anything at all", 3, &stopped), "anything at all");
  EXPECT_FALSE(stopped);
}

TEST(PartialSuffix, LongestProperPrefix) {
  EXPECT_EQ(partial_suffix("abc</th", "</think>"), 4u);
  EXPECT_EQ(partial_suffix("abc", "</think>"), 0u);
  EXPECT_EQ(partial_suffix("</think>", "</think>"), 0u);  // whole matches are not partial
  EXPECT_EQ(partial_suffix("<", "<"), 0u);
}

TEST(ReasoningSplitter, SplitsThinkBlockAtTheStart) {
  const std::string text = "<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4.";
  for (size_t step = 1; step <= 9; ++step) {
    ReasoningSplitter s(false);
    std::string reasoning, content;
    for (size_t i = 0; i < text.size(); i += step) {
      auto out = s.push(text.substr(i, step));
      reasoning += out.reasoning;
      content += out.content;
    }
    auto out = s.flush();
    reasoning += out.reasoning;
    content += out.content;
    EXPECT_EQ(reasoning, "\nLet me add 2 and 2.\n") << step;
    EXPECT_EQ(content, "The answer is 4.") << step;
  }
}

TEST(ReasoningSplitter, PromptAlreadyOpenedTheBlock) {
  ReasoningSplitter s(true);
  auto a = s.push("thinking...</th");
  auto b = s.push("ink>done");
  auto c = s.flush();
  EXPECT_EQ(a.reasoning + b.reasoning + c.reasoning, "thinking...");
  EXPECT_EQ(a.content + b.content + c.content, "done");
}

TEST(ReasoningSplitter, TextWithoutThinkIsContent) {
  ReasoningSplitter s(false);
  auto a = s.push("  Hello <think> is not at the start");
  auto b = s.flush();
  EXPECT_EQ(a.reasoning + b.reasoning, "");
  EXPECT_EQ(a.content + b.content, "  Hello <think> is not at the start");
}

TEST(ReasoningSplitter, UnclosedThinkingIsReasoning) {
  ReasoningSplitter s(false);
  auto a = s.push("<think>never closed");
  auto b = s.flush();
  EXPECT_EQ(a.reasoning + b.reasoning, "never closed");
  EXPECT_EQ(a.content + b.content, "");
}

TEST(ToolCalls, HermesQwenFormat) {
  auto p = parse_tool_calls(
      "I will check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>\n"
      "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(p.calls[0].arguments), nlohmann::json({{"city", "Paris"}, {"unit", "c"}}));
  EXPECT_EQ(p.calls[1].name, "get_time");
  EXPECT_EQ(p.calls[1].arguments, "{}");
  EXPECT_EQ(p.content, "I will check.");
  EXPECT_NE(p.calls[0].id, p.calls[1].id);
  EXPECT_EQ(p.calls[0].id.rfind("call_", 0), 0u);
}

TEST(ToolCalls, LlamaJsonFormat) {
  auto p = parse_tool_calls("{\"name\": \"search\", \"parameters\": {\"query\": \"slm\"}}");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "search");
  EXPECT_EQ(nlohmann::json::parse(p.calls[0].arguments)["query"], "slm");
  auto tagged = parse_tool_calls("<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": 1}}; {\"name\": \"b\", \"parameters\": {}}");
  ASSERT_EQ(tagged.calls.size(), 2u);
  EXPECT_EQ(tagged.calls[1].name, "b");
}

TEST(ToolCalls, MistralFormats) {
  auto p = parse_tool_calls("[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}]");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "add");
  EXPECT_EQ(nlohmann::json::parse(p.calls[0].arguments)["b"], 2);
  auto v11 = parse_tool_calls("[TOOL_CALLS]add[ARGS]{\"a\": 1}[TOOL_CALLS]mul[ARGS]{\"a\": {\"b\": \"}\"}}");
  ASSERT_EQ(v11.calls.size(), 2u);
  EXPECT_EQ(v11.calls[1].name, "mul");
  EXPECT_EQ(nlohmann::json::parse(v11.calls[1].arguments)["a"]["b"], "}");
}

TEST(ToolCalls, PlainTextAndBrokenCallsStayContent) {
  for (const std::string text : {"Just an answer.", "{\"not\": \"a call\"}", "<tool_call>{broken json</tool_call>",
                                 "[TOOL_CALLS] nothing", "{\"name\": 5}"}) {
    auto p = parse_tool_calls(text);
    EXPECT_TRUE(p.calls.empty()) << text;
    EXPECT_EQ(p.content, text);
  }
}

TEST(ToolCallStream, StreamsTextBeforeTheCallAndHoldsTheCall) {
  const std::string text = "Sure.<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}</tool_call>";
  for (size_t step = 1; step <= 6; ++step) {
    ToolCallStream s;
    std::string streamed;
    for (size_t i = 0; i < text.size(); i += step) streamed += s.push(text.substr(i, step));
    auto end = s.finish();
    EXPECT_EQ(streamed, "Sure.") << step;
    ASSERT_EQ(end.calls.size(), 1u) << step;
    EXPECT_EQ(end.calls[0].name, "f");
    EXPECT_EQ(end.content, "");
  }
}

TEST(ToolCallStream, JsonAnswerThatIsNotACallComesBackAtTheEnd) {
  ToolCallStream s;
  EXPECT_EQ(s.push("  {\"a\": "), "");
  EXPECT_EQ(s.push("1}"), "");
  auto end = s.finish();
  EXPECT_TRUE(end.calls.empty());
  EXPECT_EQ(end.content, "  {\"a\": 1}");
}

TEST(ToolCallStream, OrdinaryTextStreamsExceptAPossibleMarkerStart) {
  ToolCallStream s;
  EXPECT_EQ(s.push("Hello <"), "Hello ");
  EXPECT_EQ(s.push("b>"), "<b>");
  auto end = s.finish();
  EXPECT_EQ(end.content, "");
  EXPECT_TRUE(end.calls.empty());
}

TEST(ToolCalls, LlamaSeveralCallsAndBrokenSeparators) {
  const std::string a = R"({"name": "get_weather", "parameters": {"city": "Paris; France", "unit": "celsius"}})";
  const std::string b = R"({"name": "get_time", "parameters": {"tz": "{;}"}})";
  const std::string c = R"({"name": "noop", "parameters": {}})";
  auto three = parse_tool_calls(a + "; " + b + ";" + c);
  ASSERT_EQ(three.calls.size(), 3u);
  EXPECT_EQ(three.calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(three.calls[0].arguments)["city"], "Paris; France");
  EXPECT_EQ(three.calls[1].name, "get_time");
  EXPECT_EQ(nlohmann::json::parse(three.calls[1].arguments)["tz"], "{;}");
  EXPECT_EQ(three.calls[2].name, "noop");
  EXPECT_EQ(three.calls[2].arguments, "{}");
  EXPECT_EQ(three.content, "");
  EXPECT_NE(three.calls[0].id, three.calls[1].id);
  // A trailing separator is tolerated; anything else between calls makes the text content.
  EXPECT_EQ(parse_tool_calls(a + "; " + b + ";").calls.size(), 2u);
  for (const std::string& broken : {a + ", " + b, a + "; x" + b, a + "; {\"name\": 1}", a + "; " + b.substr(0, 20)}) {
    auto p = parse_tool_calls(broken);
    EXPECT_TRUE(p.calls.empty()) << broken;
    EXPECT_EQ(p.content, broken);
  }
}

TEST(ToolCallStream, LlamaCallsAfterPythonTagOrAsTheWholeAnswer) {
  const std::string calls = R"({"name": "f", "parameters": {"x": 1}}; {"name": "g", "parameters": {"y": "a}b"}})";
  for (const std::string& text : {calls, "<|python_tag|>" + calls, "\n" + calls}) {
    for (size_t step = 1; step <= 7; step += 3) {
      ToolCallStream s;
      std::string streamed;
      for (size_t i = 0; i < text.size(); i += step) streamed += s.push(text.substr(i, step));
      auto end = s.finish();
      EXPECT_EQ(streamed, "") << text;
      ASSERT_EQ(end.calls.size(), 2u) << text;
      EXPECT_EQ(end.calls[0].name, "f");
      EXPECT_EQ(end.calls[1].name, "g");
      EXPECT_EQ(nlohmann::json::parse(end.calls[1].arguments)["y"], "a}b");
      EXPECT_EQ(end.content, "");
    }
  }
}
