// End-to-end correctness: logits of random-weight fixtures (made by tools/ref/make_fixtures.py with
// Hugging Face transformers in float64) against slm's forward, loading each fixture from its
// safetensors folder and from the GGUF files `slm convert` makes of it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slm/engine/session.hpp"
#include "slm/model/convert.hpp"
#include "slm/util/npy.hpp"
#include "../common/vectors.hpp"

namespace fs = std::filesystem;
using namespace slm;

namespace {

struct Fixture {
  std::string name;
  fs::path dir;
  std::vector<int32_t> tokens;
  NpyArray logits;
};

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  const fs::path root = fs::path(SLM_TEST_DATA) / "models";
  if (!fs::exists(root)) return names;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "logits.npy")) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.name = name;
  f.dir = fs::path(SLM_TEST_DATA) / "models" / name;
  std::ifstream in(f.dir / "tokens.json");
  const auto j = nlohmann::json::parse(in);
  f.tokens = j.at("tokens").get<std::vector<int32_t>>();
  f.logits = npy_read((f.dir / "logits.npy").string());
  return f;
}

// ||a - b|| / ||b|| over every position's logits.
using slm_test::relative_l2;

std::vector<float> run_logits(const std::string& path, const std::vector<int32_t>& tokens, int64_t n_batch) {
  auto model = Model::load(path);
  SessionOptions options;
  options.n_ctx = int64_t(tokens.size());
  options.n_batch = n_batch;
  Session session(model, options);
  std::vector<float> logits(tokens.size() * size_t(model->config().vocab_size));
  session.forward(tokens, logits.data(), true);
  return logits;
}

class FixtureLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureLogits, SafetensorsFolderMatchesTransformers) {
  const Fixture f = load_fixture(GetParam());
  ASSERT_EQ(f.logits.shape.size(), 2u);
  ASSERT_EQ(f.logits.shape[0], f.tokens.size());
  const auto logits = run_logits(f.dir.string(), f.tokens, 512);
  ASSERT_EQ(logits.size(), f.logits.f32.size());
  EXPECT_LT(relative_l2(logits, f.logits.f32), 1e-4) << f.name;
}

TEST_P(FixtureLogits, TokenByTokenDecodeMatchesBatch) {
  // Prompt processing in chunks (here of 7 tokens) and one token at a time must give the same
  // logits as the reference: exercises the KV cache and positions across forwards.
  const Fixture f = load_fixture(GetParam());
  const auto chunked = run_logits(f.dir.string(), f.tokens, 7);
  EXPECT_LT(relative_l2(chunked, f.logits.f32), 1e-4) << f.name;
  const auto single = run_logits(f.dir.string(), f.tokens, 1);
  EXPECT_LT(relative_l2(single, f.logits.f32), 1e-4) << f.name;
}

TEST_P(FixtureLogits, ConvertedGgufMatchesTransformers) {
  const Fixture f = load_fixture(GetParam());
  const fs::path tmp = fs::temp_directory_path() / ("slm_fixture_" + f.name + "_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() { fs::remove_all(p); }
  } cleanup{tmp};
  // f32: the same numbers as the folder, through GGUF names, key lookups and (llama) Q/K permutation.
  ConvertOptions f32;
  f32.outtype = DType::F32;
  convert_hf_to_gguf(f.dir.string(), (tmp / "f32.gguf").string(), f32);
  EXPECT_LT(relative_l2(run_logits((tmp / "f32.gguf").string(), f.tokens, 512), f.logits.f32), 1e-4) << f.name;
  // f16 and bf16 round the weights: the error grows to what those formats allow.
  ConvertOptions f16;
  f16.outtype = DType::F16;
  convert_hf_to_gguf(f.dir.string(), (tmp / "f16.gguf").string(), f16);
  EXPECT_LT(relative_l2(run_logits((tmp / "f16.gguf").string(), f.tokens, 512), f.logits.f32), 5e-3) << f.name;
  ConvertOptions bf16;
  bf16.outtype = DType::BF16;
  convert_hf_to_gguf(f.dir.string(), (tmp / "bf16.gguf").string(), bf16);
  EXPECT_LT(relative_l2(run_logits((tmp / "bf16.gguf").string(), f.tokens, 512), f.logits.f32), 3e-2) << f.name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureLogits, ::testing::ValuesIn(fixture_names()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FixtureLogits);

TEST(Fixtures, EveryArchitectureHasAFixture) {
  const auto names = fixture_names();
  for (const char* required : {"llama3", "smollm2", "qwen2", "deepseek_r1_qwen", "qwen3", "mistral", "gemma3", "phi3", "phi4_mini"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), required), names.end()) << "missing fixture " << required;
  }
}

}  // namespace
