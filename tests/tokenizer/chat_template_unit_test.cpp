// What the reference data cannot show: error kinds and positions, the sandbox's limits, key order,
// strftime_now, and chat_context. Expected texts here were checked with Python Jinja2 in
// transformers' environment.
#include <gtest/gtest.h>

#include <ctime>

#include "chat_template_test_util.hpp"
#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& source, const json& context = json::object(), const TemplateLimits& limits = {}) {
  return ChatTemplate::parse(source, limits).render(context);
}

// The error a call raises; fails the test when it raises none.
template <typename F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an error";
  return Error(ErrorKind::internal, "");
}

TEST(ChatTemplate, SyntaxErrorsNameLineAndColumn) {
  const Error e = error_of([] { ChatTemplate::parse("line one\n{{ 1 + }}"); });
  EXPECT_EQ(e.kind(), ErrorKind::format);
  EXPECT_NE(std::string(e.what()).find("line 2, column 8"), std::string::npos) << e.what();

  EXPECT_EQ(error_of([] { ChatTemplate::parse("{% if x %}no end"); }).kind(), ErrorKind::format);
  EXPECT_EQ(error_of([] { ChatTemplate::parse("{{ 'unterminated }}"); }).kind(), ErrorKind::format);
  EXPECT_EQ(error_of([] { ChatTemplate::parse("{% for x in y %}{% endif %}"); }).kind(), ErrorKind::format);
  EXPECT_EQ(error_of([] { ChatTemplate::parse("{# never closed"); }).kind(), ErrorKind::format);
  EXPECT_EQ(error_of([] { ChatTemplate::parse("{{ x }"); }).kind(), ErrorKind::format);
  EXPECT_EQ(error_of([] { ChatTemplate::parse("{% break %}"); }).kind(), ErrorKind::format);
  EXPECT_EQ(error_of([] { ChatTemplate::parse("{% frobnicate %}"); }).kind(), ErrorKind::format);
  const Error column = error_of([] { ChatTemplate::parse("é{{ ) }}"); });
  EXPECT_NE(std::string(column.what()).find("column 5"), std::string::npos) << column.what();
}

TEST(ChatTemplate, UnsupportedConstructsSayWhat) {
  for (const char* source : {"{% extends 'base.html' %}", "{% include 'x' %}", "{% import 'x' as y %}",
                             "{% from 'x' import y %}", "{% block body %}{% endblock %}",
                             "{% for x in y recursive %}{% endfor %}", "{% do x %}", "{{ f(*args) }}"}) {
    const Error e = error_of([&] { ChatTemplate::parse(source); });
    EXPECT_EQ(e.kind(), ErrorKind::unsupported) << source << ": " << e.what();
  }
  const Error filter = error_of([] { render("{{ 'x'|urlencode }}"); });
  EXPECT_EQ(filter.kind(), ErrorKind::unsupported) << filter.what();
  EXPECT_NE(std::string(filter.what()).find("urlencode"), std::string::npos);
}

TEST(ChatTemplate, RaiseExceptionCarriesTheMessage) {
  const Error e = error_of([] { render("a{{ raise_exception('Roles must alternate!') }}"); });
  EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
  EXPECT_STREQ(e.what(), "Roles must alternate!");
}

TEST(ChatTemplate, RuntimeErrorsNameTheLine) {
  const Error e = error_of([] { render("ok\n{% if true %}\n{{ missing.attr }}{% endif %}"); });
  EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("'missing' is undefined"), std::string::npos) << e.what();
}

TEST(ChatTemplate, ContextMustBeAnObject) {
  EXPECT_EQ(error_of([] { render("x", json::array()); }).kind(), ErrorKind::invalid_argument);
}

TEST(ChatTemplate, KeysKeepTheirOrder) {
  // Python dicts keep insertion order; tool schemas are printed with tojson in that order.
  const json context = json::parse(R"({"tool": {"name": "f", "description": "d", "parameters": {"z": 1, "a": 2}}})");
  EXPECT_EQ(render("{{ tool|tojson }}|{% for k in tool.parameters %}{{ k }}{% endfor %}", context),
            R"({"name": "f", "description": "d", "parameters": {"z": 1, "a": 2}}|za)");
}

TEST(ChatTemplate, JsonNumbersKeepTheirType) {
  const json context = json::parse(R"({"a": 1, "b": 1.0, "c": 2.5e-7, "d": true, "e": null, "f": 12345678901234})");
  EXPECT_EQ(render("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }} {{ f }} {{ [a, b, c, d, e]|tojson }}", context),
            "1 1.0 2.5e-07 True None 12345678901234 [1, 1.0, 2.5e-07, true, null]");
}

TEST(ChatTemplate, StrftimeNowFormatsTheLocalTime) {
  const std::string out = render("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %b %Y') }}");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char day[64], text[64];
  std::strftime(day, sizeof(day), "%Y-%m-%d", &local);
  std::strftime(text, sizeof(text), "%d %b %Y", &local);
  // (a render across midnight could see two dates; not worth a retry here)
  EXPECT_EQ(out, std::string(day) + "|" + text);
}

TEST(ChatTemplate, OutputLimit) {
  TemplateLimits limits;
  limits.max_output_bytes = 1000;
  EXPECT_EQ(render("{% for i in range(10) %}0123456789{% endfor %}", json::object(), limits).size(), 100u);
  const Error e = error_of([&] { render("{% for i in range(101) %}0123456789{% endfor %}", json::object(), limits); });
  EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
  // strings built on the way are bounded too
  EXPECT_EQ(error_of([&] { render("{% set x = 'ab' * 600 %}", json::object(), limits); }).kind(), ErrorKind::out_of_range);
  EXPECT_EQ(error_of([&] { render("{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                                  json::object(), limits); })
                .kind(),
            ErrorKind::out_of_range);
}

TEST(ChatTemplate, LoopLimit) {
  TemplateLimits limits;
  limits.max_loop_iterations = 50;
  EXPECT_NO_THROW(render("{% for i in range(50) %}{% endfor %}", json::object(), limits));
  // counted over the whole render, nested loops included
  const Error e = error_of([&] { render("{% for i in range(8) %}{% for j in range(8) %}{% endfor %}{% endfor %}", json::object(), limits); });
  EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
  EXPECT_EQ(error_of([] { render("{{ range(1000000)|length }}"); }).kind(), ErrorKind::out_of_range);
}

TEST(ChatTemplate, RecursionLimit) {
  TemplateLimits limits;
  limits.max_recursion = 10;
  const std::string source = "{% macro down(n) %}{% if n > 0 %}{{ down(n - 1) }}{% endif %}{{ n }}{% endmacro %}";
  EXPECT_EQ(render(source + "{{ down(5) }}", json::object(), limits), "012345");
  EXPECT_EQ(error_of([&] { render(source + "{{ down(20) }}", json::object(), limits); }).kind(), ErrorKind::out_of_range);
  EXPECT_EQ(error_of([] { render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"); }).kind(), ErrorKind::out_of_range);
}

TEST(ChatTemplate, SourceAndNestingLimits) {
  TemplateLimits limits;
  limits.max_source_bytes = 10;
  EXPECT_EQ(error_of([&] { ChatTemplate::parse("01234567890", limits); }).kind(), ErrorKind::out_of_range);
  const std::string deep = "{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}";
  EXPECT_EQ(error_of([&] { ChatTemplate::parse(deep); }).kind(), ErrorKind::format);
  std::string blocks;
  for (int k = 0; k < 300; ++k) blocks += "{% if true %}";
  EXPECT_EQ(error_of([&] { ChatTemplate::parse(blocks); }).kind(), ErrorKind::format);
}

TEST(ChatTemplate, OperationLimitStopsQuadraticWork) {
  TemplateLimits limits;
  limits.max_operations = 100000;
  const Error e = error_of([&] {
    render("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = ns.l + [i] %}{% endfor %}", json::object(), limits);
  });
  EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
}

TEST(ChatTemplate, OperationLimitCountsTheLengthOfStrings) {
  TemplateLimits limits;
  limits.max_operations = 100000;
  json context = json::object();
  context["s"] = std::string(100000, 'a');
  // one call on the long string is fine; a loop of them is stopped early
  EXPECT_EQ(render("{{ s.upper()|length }}", context, limits), "100000");
  for (const char* source : {"{% for i in range(1000) %}{% set x = s.upper() %}{% endfor %}",
                             "{% for i in range(1000) %}{% set x = s|trim %}{% endfor %}",
                             "{% for i in range(1000) %}{% set x = s[i] %}{% endfor %}",
                             "{% for i in range(1000) %}{% set x = s[1:] %}{% endfor %}",
                             "{% for i in range(1000) %}{% set x = 'b' in s %}{% endfor %}"}) {
    EXPECT_EQ(error_of([&] { render(source, context, limits); }).kind(), ErrorKind::out_of_range) << source;
  }
}

TEST(ChatTemplate, SandboxBlocksMutationAndPrivateAttributes) {
  const json context = json::parse(R"({"l": [1], "d": {"a": 1}, "s": "x"})");
  EXPECT_EQ(error_of([&] { render("{{ l.append(2) }}", context); }).kind(), ErrorKind::invalid_argument);
  EXPECT_EQ(error_of([&] { render("{{ d.clear() }}", context); }).kind(), ErrorKind::invalid_argument);
  EXPECT_EQ(render("[{{ s.__class__ }}][{{ d.__len__ }}][{{ l._x }}]", context), "[][][]");
  EXPECT_EQ(error_of([&] { render("{{ s.__class__() }}", context); }).kind(), ErrorKind::invalid_argument);
}

TEST(ChatTemplate, NamespaceHoldingItselfDoesNotLeak) {
  // (the sanitizer build reports leaks; a namespace cycle must still be freed)
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns.me.me is defined }}"), "True");
}

TEST(ChatTemplate, InvalidUtf8DoesNotBreakStringOperations) {
  json context = json::object();
  context["s"] = std::string("a\xff\xfe" "b");
  EXPECT_EQ(render("{{ s|length }} {{ s[1:]|length }} {{ s|upper|length }}", context), "4 3 4");
}

TEST(ChatTemplate, RendersTwiceTheSame) {
  const ChatTemplate t = ChatTemplate::parse("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}");
  const json context = json::parse(R"({"messages": [1, 2, 3]})");
  EXPECT_EQ(t.render(context), "3");
  EXPECT_EQ(t.render(context), "3");
}

TEST(ChatContext, BuildsWhatTransformersPasses) {
  TokenizerData data;
  data.tokens = {"<s>", "</s>", "hello", "<pad>"};
  data.types = {TokenType::control, TokenType::control, TokenType::normal, TokenType::control};
  data.bos_id = 0;
  data.eos_id = 1;
  data.pad_id = 3;
  const json messages = json::parse(R"([{"role": "user", "content": "hi"}])");
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  const json c = chat_context(data, messages, &tools, true, false);
  EXPECT_EQ(c["messages"], messages);
  EXPECT_EQ(c["tools"], tools);
  EXPECT_TRUE(c["documents"].is_null());
  EXPECT_EQ(c["add_generation_prompt"], true);
  EXPECT_EQ(c["bos_token"], "<s>");
  EXPECT_EQ(c["eos_token"], "</s>");
  EXPECT_EQ(c["pad_token"], "<pad>");
  EXPECT_FALSE(c.contains("unk_token"));
  EXPECT_EQ(c["enable_thinking"], false);

  const json plain = chat_context(data, messages, nullptr, false, std::nullopt);
  EXPECT_TRUE(plain["tools"].is_null());
  EXPECT_FALSE(plain.contains("enable_thinking"));
  EXPECT_EQ(render("{{ tools is none }}{{ enable_thinking is defined }}", plain), "TrueFalse");

  EXPECT_EQ(error_of([&] { chat_context(data, json::object(), nullptr, true, std::nullopt); }).kind(),
            ErrorKind::invalid_argument);
}

}  // namespace
}  // namespace slm
