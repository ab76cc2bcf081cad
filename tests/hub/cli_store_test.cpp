// The store commands of the `slm` binary (pull, list, show, rm) and store names in other commands,
// against the fake hub.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "fake_hub.hpp"
#include "slm/hub/hash.hpp"
#include "slm/hub/store.hpp"

namespace slm::hub {
namespace {

namespace fs = std::filesystem;
using test::FakeHub;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class CliStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    test::no_proxy_for_loopback();
    const fs::path src = test::fresh_dir("cli_sources");
    fixture_ = fs::path(SLM_TEST_DATA) / "models" / "llama3";
    gguf_ = src / "tiny-llama-F16.gguf";
    const std::string convert = std::string(SLM_EXE) + " convert " + fixture_.string() + " -o " + gguf_.string() +
                                " --outtype f16 >/dev/null 2>&1";
    ASSERT_EQ(std::system(convert.c_str()), 0);
    nlohmann::json config = {
        {"repos",
         {{"test/tiny-llama-GGUF",
           {{"files", {{"README.md", {{"text", "# tiny\n"}}}, {"tiny-llama-F16.gguf", {{"file", gguf_.string()}}}}}}},
          {"test/tiny-llama",
           {{"files",
             {{"config.json", {{"file", (fixture_ / "config.json").string()}}},
              {"model.safetensors", {{"file", (fixture_ / "model.safetensors").string()}}}}}}}}}};
    hub_ = new FakeHub(config);
  }
  static void TearDownTestSuite() {
    delete hub_;
    hub_ = nullptr;
  }
  void SetUp() override {
    hub_->control("reset");
    home_ = test::fresh_dir(std::string("cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  // Runs a shell command line with SLM (the binary), SLM_HOME and HF_ENDPOINT set.
  Result sh(const std::string& line) const {
    const fs::path out = home_ / "stdout", err = home_ / "stderr";
    const std::string cmd = "SLM='" + std::string(SLM_EXE) + "' SLM_HOME='" + home_.string() + "' HF_ENDPOINT='" +
                            hub_->endpoint() + "' HF_TOKEN= NO_PROXY=127.0.0.1 sh -c '" + line + "' </dev/null >" +
                            out.string() + " 2>" + err.string();
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = test::slurp(out);
    r.err = test::slurp(err);
    return r;
  }
  Result slm(const std::string& args) const { return sh("\"$SLM\" " + args); }

  static FakeHub* hub_;
  static fs::path fixture_, gguf_;
  fs::path home_;
};

FakeHub* CliStoreTest::hub_ = nullptr;
fs::path CliStoreTest::fixture_, CliStoreTest::gguf_;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_F(CliStoreTest, PullListShowInfoRm) {
  // Not in the store yet: other commands do not download, they point at `slm pull`.
  auto r = slm("info hf:test/tiny-llama-GGUF:F16");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "slm pull hf:test/tiny-llama-GGUF:F16")) << r.err;
  EXPECT_TRUE(hub_->control("stats")["requests"].empty());

  r = slm("pull hf:test/tiny-llama-GGUF:f16");
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path stored = home_ / "models/hf/test/tiny-llama-GGUF/F16/tiny-llama-F16.gguf";
  EXPECT_TRUE(contains(r.out, "hf:test/tiny-llama-GGUF:F16")) << r.out;
  EXPECT_TRUE(contains(r.out, stored.string())) << r.out;
  EXPECT_TRUE(contains(r.err, "tiny-llama-F16.gguf: 100%")) << r.err;  // progress lines (not a terminal)
  EXPECT_EQ(test::slurp(stored), test::slurp(gguf_));

  r = slm("list");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "NAME")) << r.out;
  EXPECT_TRUE(contains(r.out, "hf:test/tiny-llama-GGUF:F16")) << r.out;
  EXPECT_TRUE(contains(r.out, "gguf")) << r.out;
  EXPECT_TRUE(contains(r.out, utc_now_iso8601().substr(0, 10))) << r.out;

  r = slm("show hf:test/tiny-llama-GGUF:F16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "sha256 " + sha256_file(gguf_))) << r.out;
  EXPECT_TRUE(contains(r.out, "quant:          F16")) << r.out;
  EXPECT_TRUE(contains(r.out, "architecture:   llama")) << r.out;

  // Store names in other commands: full, short, owner/repo.
  for (const char* name : {"hf:test/tiny-llama-GGUF:F16", "tiny-llama-GGUF", "test/tiny-llama-GGUF:F16"}) {
    r = slm(std::string("info ") + name);
    EXPECT_EQ(r.code, 0) << name << ": " << r.err;
    EXPECT_TRUE(contains(r.out, "architecture:   llama")) << r.out;
    EXPECT_TRUE(contains(r.out, stored.string())) << r.out;
  }
  r = slm("info hf:test/tiny-llama-GGUF:Q4_K_M");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "slm pull hf:test/tiny-llama-GGUF:Q4_K_M")) << r.err;

  r = slm("rm tiny-llama-GGUF");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "removed hf:test/tiny-llama-GGUF:F16")) << r.out;
  EXPECT_FALSE(fs::exists(stored));
  r = slm("list");
  EXPECT_FALSE(contains(r.out, "tiny-llama-GGUF")) << r.out;
  EXPECT_NE(slm("info tiny-llama-GGUF").code, 0);
  EXPECT_NE(slm("rm tiny-llama-GGUF").code, 0);
}

TEST_F(CliStoreTest, SafetensorsFolderByStoreName) {
  auto r = slm("pull -q hf:test/tiny-llama");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // --quiet
  r = slm("info hf:test/tiny-llama:safetensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "format:         safetensors")) << r.out;
  EXPECT_TRUE(contains(r.out, "architecture:   llama")) << r.out;
  r = slm("show --json tiny-llama");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "safetensors");
  EXPECT_EQ(j["files"].size(), 2u);
  EXPECT_EQ(j["model"]["architecture"], "llama");
}

TEST_F(CliStoreTest, TwoProcessesPullingTheSameFile) {
  hub_->control("set?throttle_ms=20");
  const auto r = sh("\"$SLM\" pull hf:test/tiny-llama-GGUF:F16 & a=$!; \"$SLM\" pull hf:test/tiny-llama-GGUF:F16 & b=$!; "
                    "wait $a; ra=$?; wait $b; rb=$?; exit $((ra + rb))");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::slurp(home_ / "models/hf/test/tiny-llama-GGUF/F16/tiny-llama-F16.gguf"), test::slurp(gguf_));
  EXPECT_EQ(hub_->bytes_served("test/tiny-llama-GGUF/tiny-llama-F16.gguf"), fs::file_size(gguf_));
  EXPECT_FALSE(fs::exists(home_ / "models/hf/test/tiny-llama-GGUF/F16/tiny-llama-F16.gguf.part"));
}

TEST_F(CliStoreTest, InterruptedPullThenResumeAndPartialRemoval) {
  hub_->control("set?cut_after=20000&cut_times=1");
  auto r = slm("pull --retries 0 hf:test/tiny-llama-GGUF:F16");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "again to resume")) << r.err;
  EXPECT_TRUE(contains(slm("list").err, "no models")) << "a partial pull is not listed";
  r = slm("pull hf:test/tiny-llama-GGUF:F16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "resuming at")) << r.err;
  EXPECT_EQ(hub_->bytes_served("test/tiny-llama-GGUF/tiny-llama-F16.gguf"), fs::file_size(gguf_));

  hub_->control("set?cut_after=20000&cut_times=1");
  r = slm("pull hf:test/tiny-llama/model.gguf");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "no such file")) << r.err;
  r = slm("pull --retries 0 hf:test/tiny-llama");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(fs::exists(home_ / "models/hf/test/tiny-llama/safetensors"));
  r = slm("rm hf:test/tiny-llama:safetensors");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "partial")) << r.out;
  EXPECT_FALSE(fs::exists(home_ / "models/hf/test/tiny-llama"));
}

TEST_F(CliStoreTest, BadNamesAreInvalidArguments) {
  for (const char* bad : {"hf:../x", "hf:test/tiny-llama-GGUF/../../x.gguf", "hf:test/x:Q4/K"}) {
    const auto r = slm(std::string("pull ") + bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "slm: error:")) << r.err;
  }
  EXPECT_TRUE(hub_->control("stats")["requests"].empty());
  // A missing path keeps its usual error.
  const auto r = slm("info /nonexistent/model.gguf");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.err, "does not exist")) << r.err;
}

}  // namespace
}  // namespace slm::hub
