// The official `openai` npm client against `slm serve` on the demo model: each script under
// client/ exits 0 and prints "ok". Skipped when node or the package (tools/fetch_test_assets.sh)
// is missing.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "server_process.hpp"

using namespace slm_test;

namespace {

fs::path openai_dir() {
  const char* assets = std::getenv("SLM_ASSETS");
  const fs::path root = assets ? fs::path(assets) : fs::path(SLM_SOURCE_DIR) / ".assets";
  return root / "node_modules" / "openai";
}

bool have_node() { return std::system("node --version >/dev/null 2>&1") == 0; }

ServerProcess& client_server() {
  static ServerProcess server({demo_model(), "--ctx", "256", "--parallel", "4", "--name", "demo"});
  return server;
}

// The demo model with a chat template that opens <think> (reasoning.mjs).
ServerProcess& thinking_server() {
  static ServerProcess server({demo_model(), "--ctx", "512", "--parallel", "2", "--name", "demo", "--chat-template",
                               (fs::path(SLM_SOURCE_DIR) / "tests" / "server" / "client" / "think_template.jinja").string()});
  return server;
}

// The demo model under a short Llama-3-style chat template (tools_llama3.mjs): Llama 3 tool calls.
ServerProcess& llama3_server() {
  static ServerProcess server({demo_model(), "--ctx", "512", "--parallel", "4", "--name", "demo", "--chat-template",
                               (fs::path(SLM_SOURCE_DIR) / "tests" / "server" / "client" / "llama3_template.jinja").string()});
  return server;
}

ServerProcess& server_for(const std::string& script) {
  if (script == "reasoning.mjs") return thinking_server();
  if (script == "tools_llama3.mjs") return llama3_server();
  return client_server();
}

struct ScriptRun {
  int code = -1;
  std::string output;
};

ScriptRun run_script(const std::string& name) {
  const fs::path script = fs::path(SLM_SOURCE_DIR) / "tests" / "server" / "client" / name;
  const std::string cmd = "SLM_OPENAI_DIR='" + openai_dir().string() + "' node '" + script.string() + "' " +
                          server_for(name).url() + " demo 2>&1";
  ScriptRun r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class OpenAIClient : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!have_node()) GTEST_SKIP() << "node is not installed";
    if (!fs::exists(openai_dir() / "index.mjs")) {
      GTEST_SKIP() << "the openai npm package is not installed (tools/fetch_test_assets.sh)";
    }
  }
};

}  // namespace

TEST_P(OpenAIClient, ScriptPasses) {
  const ScriptRun r = run_script(GetParam());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Scripts, OpenAIClient,
                         ::testing::Values("chat.mjs", "completions.mjs", "embeddings.mjs", "errors.mjs", "disconnect.mjs",
                                           "json_schema.mjs", "tools.mjs", "reasoning.mjs",
                                           "tools_llama3.mjs"),
                         [](const auto& info) {
                           std::string name = info.param.substr(0, info.param.find('.'));
                           return name;
                         });
