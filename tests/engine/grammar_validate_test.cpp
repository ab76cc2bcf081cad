// validate_json against hand-written cases.
#include <gtest/gtest.h>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/engine/grammar/string_dfa.hpp"
#include "slm/util/error.hpp"

using namespace slm;
using nlohmann::json;

namespace {

size_t n_errors(const char* schema, const char* value) {
  return grammar::validate_json(json::parse(schema), json::parse(value)).size();
}

TEST(GrammarValidate, Types) {
  EXPECT_EQ(n_errors(R"({"type":"integer"})", "3"), 0u);
  EXPECT_EQ(n_errors(R"({"type":"integer"})", "3.0"), 0u);
  EXPECT_EQ(n_errors(R"({"type":"integer"})", "3.5"), 1u);
  EXPECT_EQ(n_errors(R"({"type":"number"})", "\"3\""), 1u);
  EXPECT_EQ(n_errors(R"({"type":["null","string"]})", "null"), 0u);
  EXPECT_EQ(n_errors(R"({"type":["null","string"]})", "false"), 1u);
  EXPECT_EQ(n_errors(R"({"type":"object"})", "[]"), 1u);
  EXPECT_EQ(n_errors("true", "[1]"), 0u);
  EXPECT_EQ(n_errors("false", "1"), 1u);
}

TEST(GrammarValidate, Objects) {
  const char* s = R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"],
                      "additionalProperties":false})";
  EXPECT_EQ(n_errors(s, R"({"a":1,"b":"x"})"), 0u);
  EXPECT_EQ(n_errors(s, R"({"b":"x"})"), 1u);
  EXPECT_EQ(n_errors(s, R"({"a":1,"c":2})"), 1u);
  EXPECT_EQ(n_errors(s, R"({"a":"1","b":2})"), 2u);
  EXPECT_EQ(n_errors(R"({"additionalProperties":{"type":"integer"}})", R"({"x":1,"y":"2"})"), 1u);
  const auto errors = grammar::validate_json(json::parse(s), json::parse(R"({"a":"1"})"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("/a"), std::string::npos) << errors[0];
}

TEST(GrammarValidate, ArraysStringsNumbers) {
  EXPECT_EQ(n_errors(R"({"items":{"type":"integer"},"minItems":2,"maxItems":3})", "[1,2]"), 0u);
  EXPECT_EQ(n_errors(R"({"items":{"type":"integer"},"minItems":2,"maxItems":3})", "[1]"), 1u);
  EXPECT_EQ(n_errors(R"({"items":{"type":"integer"},"minItems":2,"maxItems":3})", "[1,2,3,\"4\"]"), 2u);
  EXPECT_EQ(n_errors(R"({"minLength":2,"maxLength":2})", "\"\xC3\xA9\xC3\xA9\""), 0u);
  EXPECT_EQ(n_errors(R"({"minLength":2})", "\"a\""), 1u);
  EXPECT_EQ(n_errors(R"({"pattern":"^a.c$"})", "\"a\\\"c\""), 0u);  // decoded text: a"c
  EXPECT_EQ(n_errors(R"({"pattern":"b"})", "\"abc\""), 0u);
  EXPECT_EQ(n_errors(R"({"pattern":"^b"})", "\"abc\""), 1u);
  EXPECT_EQ(n_errors(R"({"format":"date"})", "\"2024-02-29\""), 0u);
  EXPECT_EQ(n_errors(R"({"format":"date"})", "\"2024-2-29\""), 1u);
  EXPECT_EQ(n_errors(R"({"format":"email"})", "\"a@b.co\""), 0u);
  EXPECT_EQ(n_errors(R"({"format":"email"})", "\"a@b\""), 1u);
  EXPECT_EQ(n_errors(R"({"format":"date-time"})", "\"2024-02-29T23:59:60Z\""), 1u);
  EXPECT_EQ(n_errors(R"({"minimum":1,"maximum":2})", "1"), 0u);
  EXPECT_EQ(n_errors(R"({"minimum":1,"maximum":2})", "2.5"), 1u);
  EXPECT_EQ(n_errors(R"({"exclusiveMinimum":1})", "1"), 1u);
  EXPECT_EQ(n_errors(R"({"exclusiveMaximum":1})", "0.999"), 0u);
}

TEST(GrammarValidate, Combinators) {
  EXPECT_EQ(n_errors(R"({"anyOf":[{"type":"integer"},{"minimum":0}]})", "1"), 0u);
  EXPECT_EQ(n_errors(R"({"oneOf":[{"type":"integer"},{"minimum":0}]})", "1"), 1u);  // both match
  EXPECT_EQ(n_errors(R"({"oneOf":[{"type":"integer"},{"minimum":0}]})", "-1"), 0u);
  EXPECT_EQ(n_errors(R"({"anyOf":[{"type":"integer"},{"type":"null"}]})", "\"x\""), 1u);
  EXPECT_EQ(n_errors(R"({"allOf":[{"type":"integer"},{"minimum":3}]})", "2"), 1u);
  EXPECT_EQ(n_errors(R"({"enum":[1,"a",null]})", "null"), 0u);
  EXPECT_EQ(n_errors(R"({"enum":[1,"a",null]})", "2"), 1u);
  EXPECT_EQ(n_errors(R"({"const":{"a":[1]}})", R"({"a":[1]})"), 0u);
  EXPECT_EQ(n_errors(R"({"const":{"a":[1]}})", R"({"a":[2]})"), 1u);
}

TEST(GrammarValidate, RefsAndUnsupported) {
  const char* tree = R"({"$defs":{"t":{"type":"object","properties":{"k":{"type":"array","items":{"$ref":"#/$defs/t"}}},
                          "additionalProperties":false}},"$ref":"#/$defs/t"})";
  EXPECT_EQ(n_errors(tree, R"({"k":[{"k":[]},{}]})"), 0u);
  EXPECT_EQ(n_errors(tree, R"({"k":[{"k":[{"x":1}]}]})"), 1u);
  EXPECT_EQ(n_errors(R"({"$ref":"#/nowhere"})", "1"), 1u);
  const auto errors = grammar::validate_json(json::parse(R"({"multipleOf":2})"), json::parse("4"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("multipleOf"), std::string::npos);
  EXPECT_EQ(n_errors(R"({"title":"t","description":"d","type":"integer"})", "1"), 0u);
  EXPECT_EQ(n_errors(R"({"minimum":0,"exclusiveMinimum":true})", "1"), 1u);
  EXPECT_EQ(n_errors(R"({"items":[{"type":"integer"}]})", "[1]"), 1u);
}

TEST(GrammarValidate, PatternAutomatonAgreesWithItself) {
  // The same pattern through both automata: raw JSON bytes vs decoded text.
  auto raw = grammar::compile_pattern("^[a-z]+[0-9]{2,3}$", true);
  auto text = grammar::compile_pattern("^[a-z]+[0-9]{2,3}$", false);
  for (const char* s : {"ab12", "a123", "a1", "1ab12", "abc1234", "z99"}) {
    int32_t q = raw->start;
    bool alive = true;
    for (const char* p = s; *p && alive; ++p) {
      const int32_t t = raw->step(q, uint8_t(*p));
      alive = t >= 0;
      if (alive) q = t >> 1;
    }
    EXPECT_EQ(alive && raw->accepting[size_t(q)], grammar::dfa_matches(*text, s)) << s;
  }
  EXPECT_TRUE(grammar::dfa_matches(*text, "ab12"));
  EXPECT_FALSE(grammar::dfa_matches(*text, "ab1"));
  EXPECT_THROW(grammar::compile_pattern("(a", true), Error);
  EXPECT_THROW(grammar::compile_pattern("a\\1", true), Error);
  EXPECT_THROW(grammar::compile_pattern("\\bword", true), Error);
}

}  // namespace
