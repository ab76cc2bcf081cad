// Random walks: sample random allowed tokens until the text is complete; the text must parse as
// JSON and validate against the schema, for many seeds and schemas. Masked tokens must be refused.
// (Walks prefer closing tokens so that they end; schemas that require a key while also allowing any
// other key would rarely end that way, so the key tests cover those.)
#include <gtest/gtest.h>

#include "grammar_test_util.hpp"

using namespace slm;
using namespace slm::test;
using nlohmann::json;

namespace {

const char* kSchemas[] = {
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":150},
        "email":{"type":"string","format":"email"},"tags":{"type":"array","items":{"type":"string"},"maxItems":3},
        "address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string","minLength":2}},"required":["city"],"additionalProperties":false}},
        "required":["name","age"],"additionalProperties":false})",
    R"({"type":"object"})",
    R"({"type":"object","properties":{"kind":{"enum":["a","b",1,null,[1,2]]},
        "value":{"anyOf":[{"type":"number","minimum":-1,"maximum":1},{"type":"string","pattern":"^[a-z]{1,5}$"},{"type":"boolean"}]}},
        "required":["kind","value"],"additionalProperties":false})",
    R"({"$defs":{"tree":{"type":"object","properties":{"label":{"type":"string","maxLength":4},
        "children":{"type":"array","items":{"$ref":"#/$defs/tree"},"maxItems":2}},"required":["label"],"additionalProperties":false}},
        "$ref":"#/$defs/tree"})",
    R"({"type":"array","items":{"type":"string","format":"date-time"},"minItems":1,"maxItems":2})",
    R"({"type":"object","additionalProperties":{"type":"array","items":{"type":["integer","null","string"]}},"properties":{"x":{"type":"string"}}})",
    R"({"type":"object","properties":{"p":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":0.5},
        "q":{"type":"integer","minimum":-20,"maximum":-3},"d":{"type":"string","format":"date"},"u":{"type":"string","format":"uuid"},
        "s":{"type":"string","minLength":3,"maxLength":5},"b":{"const":true}},"required":["p","q","d","u","s","b"],"additionalProperties":false})",
    R"({"oneOf":[{"type":"array","items":{"type":"boolean"},"maxItems":4},{"type":"string","pattern":"^x+y?$"},{"type":"null"}]})",
};

// Tokens made only of closing characters: preferring them makes walks end.
bool closes(const std::string& bytes) {
  return !bytes.empty() && bytes.find_first_not_of("\"]}") == std::string::npos;
}

// One walk; returns the generated text (empty string and a test failure when it does not finish).
std::string walk(const json& schema, const Tokenizer& tok, uint32_t seed, int check_masked_every) {
  auto c = grammar::compile_json_schema(schema, tok);
  std::mt19937 rng(seed);
  std::vector<uint8_t> allowed(tok.vocab_size());
  const int32_t eos = tok.data().eos_id;
  std::string text;
  for (int step = 0; step < 4000; ++step) {
    c->allowed_tokens(allowed);
    std::vector<int32_t> options, quote, bracket;
    for (size_t t = 0; t < allowed.size(); ++t) {
      if (!allowed[t]) continue;
      if (tok.is_eog(int32_t(t))) {
        EXPECT_TRUE(c->complete()) << "end-of-generation allowed before the text is complete: " << text;
        continue;
      }
      options.push_back(int32_t(t));
      const std::string bytes = tok.token_bytes(int32_t(t));
      if (closes(bytes)) (bytes[0] == '"' ? quote : bracket).push_back(int32_t(t));
    }
    const auto& closing = quote.empty() ? bracket : quote;
    EXPECT_EQ(allowed[size_t(eos)] != 0, c->complete());
    if (c->finished()) EXPECT_TRUE(options.empty()) << "finished but tokens are allowed";
    if (c->complete() && (options.empty() || std::uniform_int_distribution<int>(0, 3)(rng) == 0)) {
      c->accept(eos);
      return text;
    }
    if (options.empty()) {
      ADD_FAILURE() << "dead end after " << text;
      return "";
    }
    if (check_masked_every > 0 && step % check_masked_every == 0) {
      int32_t bad = -1;
      for (int tries = 0; tries < 50 && bad < 0; ++tries) {
        const int32_t t = std::uniform_int_distribution<int32_t>(0, int32_t(allowed.size()) - 1)(rng);
        if (!allowed[size_t(t)]) bad = t;
      }
      if (bad >= 0) EXPECT_THROW(c->accept(bad), Error) << "masked token " << bad << " accepted after " << text;
    }
    const bool prefer_closing = step > 12 && !closing.empty() && std::uniform_int_distribution<int>(0, 9)(rng) < 8;
    const auto& pool = prefer_closing ? closing : options;
    const int32_t t = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
    c->accept(t);
    text += tok.token_bytes(t);
  }
  ADD_FAILURE() << "did not finish: " << text.substr(0, 300);
  return "";
}

void check_text(const json& schema, const std::string& text, uint32_t seed) {
  json value;
  try {
    value = json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "seed " << seed << ": not JSON: " << text << " (" << e.what() << ")";
    return;
  }
  const auto errors = grammar::validate_json(schema, value);
  EXPECT_TRUE(errors.empty()) << "seed " << seed << ": " << text << " -> " << (errors.empty() ? "" : errors[0]);
}

TEST(GrammarWalk, RandomWalksValidateSmallVocabulary) {
  const Tokenizer& tok = small_tokenizer();
  for (const char* s : kSchemas) {
    const json schema = json::parse(s);
    std::set<std::string> distinct;
    for (uint32_t seed = 1; seed <= 60; ++seed) {
      const std::string text = walk(schema, tok, seed, 3);
      if (text.empty()) continue;
      distinct.insert(text);
      check_text(schema, text, seed);
    }
    EXPECT_GT(distinct.size(), 10u) << "walks are not random: " << s;
  }
}

TEST(GrammarWalk, RandomWalksValidateQwen3) {
  const Tokenizer* tok = qwen3_tokenizer();
  if (tok == nullptr) GTEST_SKIP() << "Qwen3 tokenizer not installed (tools/fetch_test_assets.sh)";
  for (const char* s : kSchemas) {
    const json schema = json::parse(s);
    for (uint32_t seed = 1; seed <= 6; ++seed) {
      const std::string text = walk(schema, *tok, seed, 5);
      if (!text.empty()) check_text(schema, text, seed);
    }
  }
}

TEST(GrammarWalk, ChoiceWalksPickAChoice) {
  const Tokenizer& tok = small_tokenizer();
  const std::vector<std::string> choices = {"yes", "no", "maybe", "ye", "n/a"};
  auto c = grammar::choice_constraint(choices, tok);
  std::vector<uint8_t> allowed(tok.vocab_size());
  std::set<std::string> seen;
  for (uint32_t seed = 1; seed <= 80; ++seed) {
    auto w = c->clone_initial();
    std::mt19937 rng(seed);
    std::string text;
    while (!w->finished()) {
      w->allowed_tokens(allowed);
      std::vector<int32_t> options;
      for (size_t t = 0; t < allowed.size(); ++t) if (allowed[t]) options.push_back(int32_t(t));
      ASSERT_FALSE(options.empty());
      const int32_t t = options[std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)];
      w->accept(t);
      if (t == tok.data().eos_id) break;
      text += tok.token_bytes(t);
    }
    EXPECT_NE(std::find(choices.begin(), choices.end(), text), choices.end()) << text;
    seen.insert(text);
  }
  EXPECT_EQ(seen.size(), choices.size());
}

}  // namespace
