// JSON schema constraints, keyword by keyword: texts fed token by token are accepted or rejected.
#include <gtest/gtest.h>

#include "grammar_test_util.hpp"

using namespace slm;
using namespace slm::test;
using nlohmann::json;

namespace {

json parse(const char* s) { return json::parse(s); }

TEST(GrammarSchema, Types) {
  EXPECT_TRUE(accepts(parse(R"({"type":"string"})"), R"("hello")"));
  EXPECT_FALSE(accepts(parse(R"({"type":"string"})"), "12"));
  EXPECT_TRUE(accepts(parse(R"({"type":"integer"})"), "-120"));
  EXPECT_FALSE(accepts(parse(R"({"type":"integer"})"), "1.5"));
  EXPECT_FALSE(accepts(parse(R"({"type":"integer"})"), "012"));
  EXPECT_TRUE(accepts(parse(R"({"type":"number"})"), "0.5"));
  EXPECT_TRUE(accepts(parse(R"({"type":"number"})"), "-1.25e+12"));
  EXPECT_FALSE(accepts(parse(R"({"type":"number"})"), "1."));
  EXPECT_TRUE(accepts(parse(R"({"type":"number"})"), "12345678901234.5"));  // 15 digits at most
  EXPECT_FALSE(accepts(parse(R"({"type":"number"})"), "123456789012345.6"));
  EXPECT_FALSE(accepts(parse(R"({"type":"number"})"), "1234567890123456"));
  EXPECT_FALSE(accepts(parse(R"({"type":"number"})"), "+1"));
  EXPECT_TRUE(accepts(parse(R"({"type":"boolean"})"), "false"));
  EXPECT_FALSE(accepts(parse(R"({"type":"boolean"})"), "null"));
  EXPECT_TRUE(accepts(parse(R"({"type":"null"})"), "null"));
  EXPECT_TRUE(accepts(parse(R"({"type":["string","null"]})"), "null"));
  EXPECT_TRUE(accepts(parse(R"({"type":["string","null"]})"), R"("x")"));
  EXPECT_FALSE(accepts(parse(R"({"type":["string","null"]})"), "true"));
  EXPECT_TRUE(accepts(parse(R"({})"), R"({"a": [1, true, null, {"b":"c"}]})"));
}

TEST(GrammarSchema, PartialTextIsNotComplete) {
  EXPECT_FALSE(accepts(parse(R"({"type":"string"})"), R"("hello)"));
  EXPECT_FALSE(accepts(parse(R"({"type":"object"})"), R"({"a":1)"));
  EXPECT_FALSE(accepts(parse(R"({"type":"boolean"})"), "tru"));
}

TEST(GrammarSchema, PropertiesRequiredAndOrder) {
  const json s = json::parse(R"({"type":"object","properties":{"age":{"type":"integer"},"name":{"type":"string"}},
                                 "required":["name"],"additionalProperties":false})");
  EXPECT_TRUE(accepts(s, R"({"age":3,"name":"x"})"));
  EXPECT_TRUE(accepts(s, R"({"age": 3, "name": "x"})"));
  EXPECT_TRUE(accepts(s, R"({"name":"x"})"));
  EXPECT_FALSE(accepts(s, R"({"age":3})"));             // required missing
  EXPECT_FALSE(accepts(s, R"({"name":"x","age":3})"));  // out of order
  EXPECT_FALSE(accepts(s, R"({"name":"x","name":"y"})"));
  EXPECT_FALSE(accepts(s, R"({"name":"x","other":1})"));
  EXPECT_FALSE(accepts(s, R"({"age":"3","name":"x"})"));
  EXPECT_FALSE(accepts(s, R"({ "name":"x"})"));  // no whitespace after '{'
  EXPECT_FALSE(accepts(s, R"({"name":  "x"})")); // one space at most
  EXPECT_FALSE(accepts(s, "{\"name\":\n\"x\"}"));
}

TEST(GrammarSchema, OrderedJsonKeepsDocumentOrder) {
  const auto s = nlohmann::ordered_json::parse(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},
                                                  "required":["name","age"],"additionalProperties":false})");
  const Tokenizer& tok = small_tokenizer();
  auto c = grammar::compile_json_schema(s, tok);
  EXPECT_TRUE(feeds_tokens(*c, tok, greedy_tokens(tok, R"({"name":"x","age":3})")));
  auto d = grammar::compile_json_schema(s, tok);
  EXPECT_FALSE(feeds_tokens(*d, tok, greedy_tokens(tok, R"({"age":3,"name":"x"})")));
}

TEST(GrammarSchema, AdditionalProperties) {
  const json open = json::parse(R"({"type":"object","properties":{"name":{"type":"string"}}})");
  EXPECT_TRUE(accepts(open, R"({"name":"x","extra":[1,2]})"));
  EXPECT_TRUE(accepts(open, R"({"extra":1,"name":"x"})"));
  EXPECT_TRUE(accepts(open, R"({"nam":1})"));
  EXPECT_TRUE(accepts(open, R"({"names":1})"));
  EXPECT_FALSE(accepts(open, R"({"name":"x","name":"y"})"));
  EXPECT_FALSE(accepts(open, R"({"name":1})"));
  {
    // A token that closes a key spelling a declared key: allowed where that key may come, masked
    // where it would repeat it (while any other key stays allowed).
    const Tokenizer& tok = small_tokenizer();
    const int32_t name_quote = tok.token_id(byte_level_text("name\""));
    const int32_t me_colon = tok.token_id(byte_level_text("me\":"));
    ASSERT_GE(name_quote, 0);
    std::vector<uint8_t> allowed(tok.vocab_size());
    auto c = grammar::compile_json_schema(open, tok);
    for (int32_t t : greedy_tokens(tok, "{\"")) c->accept(t);
    c->allowed_tokens(allowed);
    EXPECT_TRUE(allowed[size_t(name_quote)]);
    for (int32_t t : greedy_tokens(tok, "na")) c->accept(t);
    c->allowed_tokens(allowed);
    EXPECT_TRUE(allowed[size_t(me_colon)]);
    auto d = grammar::compile_json_schema(open, tok);
    for (int32_t t : greedy_tokens(tok, "{\"name\":\"x\",\"")) d->accept(t);
    d->allowed_tokens(allowed);
    EXPECT_FALSE(allowed[size_t(name_quote)]);
    EXPECT_THROW(d->accept(name_quote), Error);
    EXPECT_TRUE(allowed[tok.token_id("n")]);
    for (int32_t t : greedy_tokens(tok, "na")) d->accept(t);
    d->allowed_tokens(allowed);
    EXPECT_FALSE(allowed[size_t(me_colon)]);
    EXPECT_TRUE(allowed['m']);
  }
  const json typed = json::parse(R"({"type":"object","additionalProperties":{"type":"integer"}})");
  EXPECT_TRUE(accepts(typed, R"({"a":1,"b":2})"));
  EXPECT_FALSE(accepts(typed, R"({"a":"1"})"));
  const json closed = json::parse(R"({"type":"object","additionalProperties":false})");
  EXPECT_TRUE(accepts(closed, "{}"));
  EXPECT_FALSE(accepts(closed, R"({"a":1})"));
}

TEST(GrammarSchema, RequiredNotInProperties) {
  const json s = json::parse(R"({"type":"object","required":["id"],"additionalProperties":{"type":"integer"}})");
  EXPECT_TRUE(accepts(s, R"({"id":1})"));
  EXPECT_FALSE(accepts(s, "{}"));
}

TEST(GrammarSchema, EnumAndConst) {
  const json e = json::parse(R"({"enum":["red","green",1,12,null,{"a":1}]})");
  for (const char* ok : {R"("red")", R"("green")", "1", "12", "null", R"({"a":1})"}) EXPECT_TRUE(accepts(e, ok)) << ok;
  for (const char* bad : {R"("blue")", "2", "123", R"({"a":2})", R"("re")"}) EXPECT_FALSE(accepts(e, bad)) << bad;
  EXPECT_TRUE(accepts(parse(R"({"const":"fixed"})"), R"("fixed")"));
  EXPECT_FALSE(accepts(parse(R"({"const":"fixed"})"), R"("fixe")"));
  // Sibling keywords narrow the enum.
  EXPECT_FALSE(accepts(parse(R"({"type":"string","enum":["a",1]})"), "1"));
  EXPECT_THROW(grammar::compile_grammar(nlohmann::ordered_json::parse(R"({"type":"string","enum":[1,2]})")), Error);
}

TEST(GrammarSchema, AnyOfAndOneOf) {
  const json s = json::parse(R"({"anyOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"],"additionalProperties":false},
                                          {"type":"object","properties":{"b":{"type":"string"}},"required":["b"],"additionalProperties":false}]})");
  EXPECT_TRUE(accepts(s, R"({"a":1})"));
  EXPECT_TRUE(accepts(s, R"({"b":"x"})"));
  EXPECT_FALSE(accepts(s, R"({"a":"x"})"));
  EXPECT_FALSE(accepts(s, R"({"c":1})"));
  const json o = json::parse(R"({"oneOf":[{"type":"integer"},{"type":"boolean"}]})");
  EXPECT_TRUE(accepts(o, "7"));
  EXPECT_TRUE(accepts(o, "true"));
  EXPECT_FALSE(accepts(o, R"("7")"));
}

TEST(GrammarSchema, Arrays) {
  const json s = json::parse(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})");
  EXPECT_TRUE(accepts(s, "[1]"));
  EXPECT_TRUE(accepts(s, "[1, 2,3]"));
  EXPECT_FALSE(accepts(s, "[]"));
  EXPECT_FALSE(accepts(s, "[1,2,3,4]"));
  EXPECT_FALSE(accepts(s, "[1,\"a\"]"));
  EXPECT_FALSE(accepts(s, "[1,]"));
  EXPECT_TRUE(accepts(parse(R"({"type":"array"})"), R"([[],{},"a",1.5])"));
  EXPECT_TRUE(accepts(parse(R"({"type":"array","items":false})"), "[]"));
  EXPECT_FALSE(accepts(parse(R"({"type":"array","items":false})"), "[1]"));
}

TEST(GrammarSchema, StringLength) {
  const json s = json::parse(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_FALSE(accepts(s, R"("a")"));
  EXPECT_TRUE(accepts(s, R"("ab")"));
  EXPECT_TRUE(accepts(s, R"("abc")"));
  EXPECT_FALSE(accepts(s, R"("abcd")"));
  EXPECT_TRUE(accepts(s, "\"\xC3\xA9\xC3\xA9\""));  // two characters, four bytes
  EXPECT_TRUE(accepts(s, R"("a\n")"));              // an escape is one character
  EXPECT_FALSE(accepts(s, R"("a\n\n\n")"));
}

TEST(GrammarSchema, StringEscapesAndUtf8) {
  const json s = json::parse(R"({"type":"string"})");
  EXPECT_TRUE(accepts(s, R"("say \"hi\" \\ \/ \b\f\r\t \u00e9")"));
  EXPECT_FALSE(accepts(s, R"("\x")"));
  EXPECT_FALSE(accepts(s, R"("\ud800")"));  // lone surrogate
  EXPECT_FALSE(accepts(s, "\"a\nb\""));      // raw control character
  EXPECT_FALSE(accepts(s, "\"\xC3\""));      // truncated UTF-8
  EXPECT_FALSE(accepts(s, "\"\xAD\""));      // lone continuation byte
  EXPECT_TRUE(accepts(s, "\"\xE4\xB8\xAD\""));
}

TEST(GrammarSchema, Pattern) {
  const json s = json::parse(R"({"type":"string","pattern":"^[a-c]{2}-\\d+$"})");
  EXPECT_TRUE(accepts(s, R"("ab-12")"));
  EXPECT_FALSE(accepts(s, R"("ab-")"));
  EXPECT_FALSE(accepts(s, R"("ad-1")"));
  EXPECT_FALSE(accepts(s, R"("xab-1")"));
  const json unanchored = json::parse(R"({"type":"string","pattern":"ab"})");
  EXPECT_TRUE(accepts(unanchored, R"("xxabyy")"));
  EXPECT_FALSE(accepts(unanchored, R"("xxa")"));
  const json alt = json::parse(R"({"type":"string","pattern":"^(yes|no)$"})");
  EXPECT_TRUE(accepts(alt, R"("no")"));
  EXPECT_FALSE(accepts(alt, R"("noo")"));
  const json len = json::parse(R"({"type":"string","pattern":"^a+$","maxLength":2})");
  EXPECT_TRUE(accepts(len, R"("aa")"));
  EXPECT_FALSE(accepts(len, R"("aaa")"));
}

TEST(GrammarSchema, Formats) {
  const json date = json::parse(R"({"type":"string","format":"date"})");
  EXPECT_TRUE(accepts(date, R"("2024-01-31")"));
  EXPECT_FALSE(accepts(date, R"("2024-13-01")"));
  EXPECT_FALSE(accepts(date, R"("2024-1-01")"));
  const json dt = json::parse(R"({"type":"string","format":"date-time"})");
  EXPECT_TRUE(accepts(dt, R"("2024-01-01T12:30:00Z")"));
  EXPECT_TRUE(accepts(dt, R"("2024-01-01T12:30:00.123+02:00")"));
  EXPECT_FALSE(accepts(dt, R"("2024-01-01 12:30:00Z")"));
  const json email = json::parse(R"({"type":"string","format":"email"})");
  EXPECT_TRUE(accepts(email, R"("jo.doe@example.com")"));
  EXPECT_FALSE(accepts(email, R"("jo@example")"));
  EXPECT_FALSE(accepts(email, R"("@ex.com")"));
}

TEST(GrammarSchema, NumberBounds) {
  const json s = json::parse(R"({"type":"integer","minimum":10,"maximum":99})");
  EXPECT_TRUE(accepts(s, "10"));
  EXPECT_TRUE(accepts(s, "99"));
  EXPECT_FALSE(accepts(s, "9"));
  EXPECT_FALSE(accepts(s, "100"));
  EXPECT_FALSE(accepts(s, "-10"));
  const json x = json::parse(R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1})");
  EXPECT_TRUE(accepts(x, "0.5"));
  EXPECT_TRUE(accepts(x, "0.001"));
  EXPECT_FALSE(accepts(x, "0"));
  EXPECT_FALSE(accepts(x, "1"));
  EXPECT_FALSE(accepts(x, "1.0"));
  EXPECT_FALSE(accepts(x, "0.0"));
  const json neg = json::parse(R"({"type":"number","minimum":-2.5,"maximum":-1})");
  EXPECT_TRUE(accepts(neg, "-2.5"));
  EXPECT_TRUE(accepts(neg, "-1"));
  EXPECT_FALSE(accepts(neg, "-2.6"));
  EXPECT_FALSE(accepts(neg, "-0.5"));
  // Prefixes that cannot reach the range are masked at once.
  auto c = grammar::compile_json_schema(s, small_tokenizer());
  std::vector<uint8_t> allowed(small_tokenizer().vocab_size());
  c->allowed_tokens(allowed);
  EXPECT_FALSE(allowed['-']);
  EXPECT_FALSE(allowed['0']);
  EXPECT_TRUE(allowed['1']);
  const json bad = json::parse(R"({"type":"integer","minimum":0.2,"maximum":0.8})");
  EXPECT_THROW(grammar::compile_grammar(nlohmann::ordered_json(bad)), Error);
}

TEST(GrammarSchema, RefsAndRecursion) {
  const json s = json::parse(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
      "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"],"additionalProperties":false}},
      "$ref":"#/$defs/node"})");
  // nlohmann::json sorts keys: "kids" comes before "v".
  EXPECT_TRUE(accepts(s, R"({"kids":[{"v":2},{"kids":[{"v":4}],"v":3}],"v":1})"));
  EXPECT_FALSE(accepts(s, R"({"kids":[{"w":2}],"v":1})"));
  EXPECT_FALSE(accepts(s, R"({"kids":[{"kids":[]}],"v":1})"));
  const json root = json::parse(R"({"type":"array","items":{"anyOf":[{"type":"integer"},{"$ref":"#"}]}})");
  EXPECT_TRUE(accepts(root, "[1,[2,[]],3]"));
  EXPECT_THROW(grammar::compile_grammar(nlohmann::ordered_json::parse(R"({"$ref":"#"})")), Error);
  EXPECT_THROW(grammar::compile_grammar(nlohmann::ordered_json::parse(R"({"$ref":"#/$defs/missing"})")), Error);
}

TEST(GrammarSchema, TokensSpanningElements) {
  const Tokenizer& tok = small_tokenizer();
  const json s = json::parse(R"({"type":"object","properties":{"name":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}}},
                               "required":["name","tags"],"additionalProperties":false})");
  auto id = [&](const std::string& bytes) { return tok.token_id(byte_level_text(bytes)); };
  // {"  name  ": "  abc  ", "  ...
  std::vector<int32_t> seq = {id("{\""), id("name"), id("\": \""), id("abc"), id("\", \"")};
  for (char c : std::string("tags")) seq.push_back(id(std::string(1, c)));
  seq.push_back(id("\":"));
  seq.push_back(id("[\""));
  seq.push_back(id("x\",\""));
  seq.push_back(id("a\""));
  seq.push_back(id("]}"));
  for (int32_t t : seq) ASSERT_GE(t, 0);
  auto c = grammar::compile_json_schema(s, tok);
  EXPECT_TRUE(feeds_tokens(*c, tok, seq));
  EXPECT_TRUE(c->finished());
}

TEST(GrammarSchema, SpecialTokensAndEnd) {
  const Tokenizer& tok = small_tokenizer();
  auto c = grammar::compile_json_schema(json::parse(R"({"type":"boolean"})"), tok);
  std::vector<uint8_t> allowed(tok.vocab_size() + 5, 7);
  c->allowed_tokens(allowed);
  const int32_t eos = tok.data().eos_id;
  EXPECT_FALSE(allowed[size_t(eos)]);
  EXPECT_FALSE(allowed[size_t(eos) + 1]);  // the other control token
  EXPECT_FALSE(allowed[tok.vocab_size()]);  // past the tokenizer's vocabulary
  EXPECT_THROW(c->accept(eos), Error);
  EXPECT_THROW(c->accept(eos + 1), Error);
  c->accept(tok.token_id("true"));
  EXPECT_TRUE(c->complete());
  EXPECT_TRUE(c->finished());
  c->allowed_tokens(allowed);
  size_t n_allowed = 0;
  for (uint8_t a : allowed) n_allowed += a;
  EXPECT_EQ(n_allowed, 1u);
  EXPECT_TRUE(allowed[size_t(eos)]);
  c->accept(eos);
  auto fresh = c->clone_initial();
  EXPECT_FALSE(fresh->complete());
  EXPECT_TRUE(feeds_tokens(*fresh, tok, greedy_tokens(tok, "false")));
}

TEST(GrammarSchema, NumberAtTopLevelIsCompleteButNotFinished) {
  const Tokenizer& tok = small_tokenizer();
  auto c = grammar::compile_json_schema(json::parse(R"({"type":"integer"})"), tok);
  c->accept('1');
  EXPECT_TRUE(c->complete());
  EXPECT_FALSE(c->finished());
}

TEST(GrammarChoice, ExactlyOneChoice) {
  const Tokenizer& tok = small_tokenizer();
  auto c = grammar::choice_constraint({"yes", "no", "maybe", "ye"}, tok);
  EXPECT_TRUE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "yes")));
  EXPECT_TRUE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "ye")));
  EXPECT_FALSE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "y")));
  EXPECT_FALSE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "yess")));
  EXPECT_FALSE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "nope")));
  EXPECT_THROW(grammar::choice_constraint({}, tok), Error);
  EXPECT_THROW(grammar::choice_constraint({"a", ""}, tok), Error);
}

TEST(GrammarJsonObject, AnyObject) {
  const Tokenizer& tok = small_tokenizer();
  auto c = grammar::json_object_constraint(tok);
  EXPECT_TRUE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, R"({"a":{"b":[1,"x",null]},"c":-0.5})")));
  EXPECT_FALSE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "[1]")));
  EXPECT_FALSE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, R"("a")")));
}

TEST(GrammarSchema, UnsupportedKeywordsNamePointer) {
  auto expect_unsupported = [](const char* schema, const std::string& keyword, const std::string& pointer) {
    try {
      grammar::compile_grammar(nlohmann::ordered_json::parse(schema));
      ADD_FAILURE() << "no error for " << schema;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::unsupported) << e.what();
      EXPECT_NE(std::string(e.what()).find(keyword), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(pointer), std::string::npos) << e.what();
    }
  };
  expect_unsupported(R"({"type":"string","contentEncoding":"base64"})", "contentEncoding", "#/contentEncoding");
  expect_unsupported(R"({"properties":{"a":{"not":{}}}})", "not", "#/properties/a/not");
  expect_unsupported(R"({"type":"array","uniqueItems":true})", "uniqueItems", "#/uniqueItems");
  expect_unsupported(R"({"type":"number","multipleOf":2})", "multipleOf", "#/multipleOf");
  expect_unsupported(R"({"type":"object","patternProperties":{}})", "patternProperties", "#/patternProperties");
  expect_unsupported(R"({"type":"string","format":"hostname"})", "hostname", "#/format");
  expect_unsupported(R"x({"type":"string","pattern":"(?=a)"})x", "look-around", "(?=a)");
  expect_unsupported(R"({"anyOf":[{"type":"string"}],"type":"string"})", "type", "#/type");
  expect_unsupported(R"({"$ref":"http://example.com/s.json"})", "non-local", "#/$ref");
  expect_unsupported(R"({"items":[{"type":"string"}]})", "tuple", "#/items");
  // Annotations are fine.
  EXPECT_NO_THROW(grammar::compile_grammar(nlohmann::ordered_json::parse(
      R"({"$schema":"x","title":"t","description":"d","examples":[1],"default":1,"type":"integer"})")));
}

TEST(GrammarSchema, SizeLimits) {
  std::string deep = R"({"type":"string"})";
  const std::string open = R"({"type":"array","items":)";
  for (int i = 0; i < 80; ++i) deep = open + deep + "}";
  try {
    grammar::compile_grammar(nlohmann::ordered_json::parse(deep));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::out_of_range);
    EXPECT_NE(std::string(e.what()).find("deeper"), std::string::npos) << e.what();
  }
  nlohmann::ordered_json big = {{"enum", nlohmann::ordered_json::array()}};
  for (int i = 0; i < 5000; ++i) big["enum"].push_back(i);
  EXPECT_THROW(grammar::compile_grammar(big), Error);
  grammar::SchemaLimits small;
  small.max_nodes = 10;
  nlohmann::ordered_json many = {{"type", "object"}, {"properties", nlohmann::ordered_json::object()}};
  for (int i = 0; i < 20; ++i) many["properties"]["p" + std::to_string(i)] = {{"type", "integer"}};
  EXPECT_THROW(grammar::compile_grammar(many, small), Error);
  EXPECT_THROW(grammar::compile_grammar(nlohmann::ordered_json::parse(R"({"type":"string","pattern":"a{1001}"})")), Error);
}

TEST(GrammarSchema, NoFiniteValue) {
  // A required property that recurses forever has no finite value: an error, not a dead end.
  EXPECT_THROW(grammar::compile_grammar(nlohmann::ordered_json::parse(
                   R"({"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]})")), Error);
  // As an optional property it is simply never written.
  const json s = json::parse(R"({"type":"object","properties":{"a":{"type":"object","properties":{"x":{"$ref":"#/properties/a"}},
                                  "required":["x"]},"b":{"type":"integer"}},"additionalProperties":false})");
  EXPECT_TRUE(accepts(s, R"({"b":1})"));
  EXPECT_FALSE(accepts(s, R"({"a":{)"));
  auto c = grammar::compile_json_schema(s, small_tokenizer());
  std::vector<uint8_t> allowed(small_tokenizer().vocab_size());
  c->accept('{');
  c->accept('"');
  c->allowed_tokens(allowed);
  EXPECT_FALSE(allowed['a']);
  EXPECT_TRUE(allowed['b']);
}

TEST(GrammarSchema, PatternWithMinLengthHasNoDeadEnd) {
  const json s = json::parse(R"({"type":"string","pattern":"^(ab|abcd)$","minLength":3})");
  EXPECT_TRUE(accepts(s, R"("abcd")"));
  EXPECT_FALSE(accepts(s, R"("ab")"));
  auto c = grammar::compile_json_schema(s, small_tokenizer());
  c->accept('"');
  c->accept('a');
  c->accept('b');
  std::vector<uint8_t> allowed(small_tokenizer().vocab_size());
  c->allowed_tokens(allowed);
  EXPECT_FALSE(allowed['"']);
  EXPECT_TRUE(allowed['c']);
  EXPECT_THROW(grammar::compile_grammar(nlohmann::ordered_json::parse(R"({"type":"string","pattern":"^a{2}$","minLength":3})")), Error);
}

TEST(GrammarSchema, NestingLimitWhileGenerating) {
  grammar::SchemaLimits limits;
  limits.max_nesting = 3;
  const Tokenizer& tok = small_tokenizer();
  auto c = grammar::compile_json_schema(json::parse(R"({"type":"array"})"), tok, limits);
  EXPECT_TRUE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "[[[]]]")));
  EXPECT_FALSE(feeds_tokens(*c->clone_initial(), tok, greedy_tokens(tok, "[[[[[[]]]]]]")));
}

}  // namespace
