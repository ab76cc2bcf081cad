// The engine's GPU session (CudaSession) and the CLI's --device flag: fixture logits against
// transformers' float32 logits, the forward / truncate contract, errors for what the GPU decoder
// does not support, and greedy `slm run --device cuda` on the demo model against its golden text.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cuda_test_util.hpp"
#include "slm/engine/cuda_session.hpp"
#include "slm/model/convert.hpp"
#include "slm/model/model.hpp"
#include "slm/util/error.hpp"
#include "slm/util/npy.hpp"
#include "../common/vectors.hpp"

namespace slm {
namespace {

namespace fs = std::filesystem;

fs::path test_data() {
  const char* env = std::getenv("SLM_TEST_DATA");
  return fs::path(env != nullptr && *env != '\0' ? env : SLM_TEST_DATA);
}

// The slm program: $SLM_EXE when set (a build carried elsewhere), else the one of this build.
std::string slm_exe() {
  const char* env = std::getenv("SLM_EXE");
  if (env != nullptr && *env != '\0') return env;
  return (fs::path(SLM_BINARY_DIR) / "slm").string();
}

std::vector<int32_t> fixture_tokens(const fs::path& dir) {
  std::ifstream in(dir / "tokens.json");
  return nlohmann::json::parse(in).at("tokens").get<std::vector<int32_t>>();
}

using slm_test::relative_l2;

// Every position's logits from one forward of the whole fixture sequence (all_logits), then the
// same sequence in two parts with a truncate in between (last-token logits only).
void check_fixture(const std::string& name, DType kv_type, double bound, bool batched_prompt = true) {
  const fs::path dir = test_data() / "models" / name;
  const auto model = Model::load(dir.string(), LoadOptions{false});
  const int64_t vocab = model->config().vocab_size;
  const auto tokens = fixture_tokens(dir);
  const NpyArray reference = npy_read((dir / "logits.npy").string());
  ASSERT_EQ(reference.shape.size(), 2u);
  ASSERT_EQ(reference.shape[0], tokens.size());
  ASSERT_EQ(int64_t(reference.shape[1]), vocab);

  CudaSessionOptions options;
  options.n_ctx = 64;
  options.kv_type = kv_type;
  options.batched_prompt = batched_prompt;
  CudaSession session(model, options);
  ASSERT_GE(session.n_ctx(), int64_t(tokens.size()));
  std::vector<float> logits(tokens.size() * size_t(vocab), NAN);
  session.forward(tokens, logits.data(), true);
  EXPECT_EQ(session.n_past(), int64_t(tokens.size()));
  double worst = 0.0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const double error = relative_l2(logits.data() + t * size_t(vocab), reference.f32.data() + t * size_t(vocab),
                                     size_t(vocab));
    ASSERT_TRUE(std::isfinite(error)) << name << " position " << t;
    EXPECT_LT(error, bound) << name << " position " << t;
    worst = std::max(worst, error);
  }

  // Keep the first half, then evaluate the rest again: the last token's logits are the same figures.
  const size_t half = tokens.size() / 2;
  session.truncate(int64_t(half));
  EXPECT_EQ(session.n_past(), int64_t(half));
  std::vector<float> last(static_cast<size_t>(vocab), NAN);
  session.forward(std::span<const int32_t>(tokens).subspan(half), last.data(), false);
  const size_t t_last = tokens.size() - 1;
  const double error_last = relative_l2(last.data(), reference.f32.data() + t_last * size_t(vocab), size_t(vocab));
  EXPECT_LT(error_last, bound) << name << " after truncate";
  std::printf("%s (%s cache): worst relative L2 error over %zu positions %.3g; after truncate %.3g\n", name.c_str(),
              std::string(dtype_name(kv_type)).c_str(), tokens.size(), worst, error_last);
}

TEST(CudaSession, FixtureLogitsMatchTransformers) {
  SLM_REQUIRE_CUDA();
  for (const char* name : {"llama3", "qwen2", "qwen3", "gemma3", "mistral", "phi3", "phi4_mini", "smollm2",
                           "deepseek_r1_qwen"}) {
    check_fixture(name, DType::F32, 1e-4);
  }
}

// The same through the one-token decode step (its own kernels and CUDA graph), for the fixtures with
// per-family traits: q/k/v biases (qwen2), per-head q/k norms (qwen3), post-norms, a GELU gate,
// scaled embeddings and local and global layers (gemma3), a sliding window (mistral), partial
// rotary dimensions (phi4_mini).
TEST(CudaSession, FixtureLogitsTokenByToken) {
  SLM_REQUIRE_CUDA();
  for (const char* name : {"qwen2", "qwen3", "gemma3", "mistral", "phi4_mini"}) check_fixture(name, DType::F32, 1e-4, false);
}

TEST(CudaSession, FixtureLogitsWithF16Cache) {
  SLM_REQUIRE_CUDA();
  check_fixture("qwen2", DType::F16, 5e-3);
}

TEST(CudaSession, RejectsPastContextAndBadTokens) {
  SLM_REQUIRE_CUDA();
  const auto model = Model::load((test_data() / "models" / "llama3").string(), LoadOptions{false});
  CudaSessionOptions options;
  options.n_ctx = 4;
  CudaSession session(model, options);
  std::vector<float> logits(size_t(5 * model->config().vocab_size));
  const std::vector<int32_t> five = {1, 2, 3, 4, 5};
  EXPECT_THROW(session.forward(five, logits.data(), true), Error);
  EXPECT_EQ(session.n_past(), 0);
  const std::vector<int32_t> bad = {1, int32_t(model->config().vocab_size)};
  EXPECT_THROW(session.forward(bad, logits.data(), true), Error);
  EXPECT_EQ(session.n_past(), 0);
  EXPECT_THROW(session.truncate(1), Error);
}

// Every fixture architecture runs on the GPU; what it cannot run (weights of a type it does not
// upload) is refused with the reason named (no GPU needed to tell).
TEST(CudaSession, NamesUnsupportedTraits) {
  for (const char* name : {"llama3", "qwen2", "qwen3", "gemma3", "mistral", "phi3", "phi4_mini", "smollm2",
                           "deepseek_r1_qwen"}) {
    const auto model = Model::load((test_data() / "models" / name).string(), LoadOptions{false});
    EXPECT_EQ(cuda_unsupported_reason(*model), "") << name;
  }
  const fs::path dir = fs::temp_directory_path() / ("slm_cuda_unsupported_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ConvertOptions options;
  options.recipe = "Q4_1";
  convert_hf_to_gguf((test_data() / "models" / "llama3").string(), (dir / "q4_1.gguf").string(), options);
  const auto q4_1 = Model::load((dir / "q4_1.gguf").string(), LoadOptions{false});
  fs::remove_all(dir);
  const std::string reason = cuda_unsupported_reason(*q4_1);
  EXPECT_NE(reason.find(std::string(dtype_name(DType::Q4_1))), std::string::npos) << reason;
  const auto llama3 = Model::load((test_data() / "models" / "llama3").string(), LoadOptions{false});

  EXPECT_THROW(choose_device("gpu", *llama3, 64), Error);
  EXPECT_EQ(choose_device("cpu", *llama3, 64), Device::cpu);
  std::string why;
  EXPECT_EQ(choose_device("auto", *q4_1, 64, &why), Device::cpu);
  EXPECT_FALSE(why.empty());
  if (!cuda_device_present()) GTEST_SKIP() << "no CUDA device found: the device-dependent half is skipped";
  EXPECT_EQ(choose_device("auto", *llama3, 64), Device::cuda);
  try {
    CudaSession session(q4_1);
    ADD_FAILURE() << "expected an error for Q4_1 weights";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find(std::string(dtype_name(DType::Q4_1))), std::string::npos) << e.what();
  }
}

std::string run_command(const std::string& cmd, int* status) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  *status = pclose(pipe);
  return out;
}

fs::path demo_dir() { return test_data() / ".." / ".." / "models" / "demo"; }

// Greedy `slm run --device cuda` on the demo model prints the CPU's golden text (llama.cpp's greedy
// continuation of the same prompt on the same Q8_0 file).
TEST(CudaCli, RunDemoModelMatchesGoldenText) {
  SLM_REQUIRE_CUDA();
  ASSERT_TRUE(fs::exists(slm_exe())) << "expected the slm program at " << slm_exe();
  std::ifstream golden_in(demo_dir() / "golden-q8_0.txt", std::ios::binary);
  ASSERT_TRUE(golden_in.good());
  const std::string golden((std::istreambuf_iterator<char>(golden_in)), {});
  ASSERT_FALSE(golden.empty());
  int status = -1;
  const std::string printed =
      run_command(slm_exe() + " run " + (demo_dir() / "demo-q8_0.gguf").string() +
                      " --prompt \"It is a truth universally acknowledged\" -n 32 --temp 0 --device cuda 2>/dev/null",
                  &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(printed, golden + "\n");
}

TEST(CudaCli, BenchReportsGpuFigures) {
  SLM_REQUIRE_CUDA();
  ASSERT_TRUE(fs::exists(slm_exe())) << "expected the slm program at " << slm_exe();
  int status = -1;
  const std::string printed = run_command(slm_exe() + " bench " + (demo_dir() / "demo-q8_0.gguf").string() +
                                              " -p 16 -n 16 -r 2 --device cuda --json 2>/dev/null",
                                          &status);
  ASSERT_EQ(status, 0) << printed;
  const auto out = nlohmann::json::parse(printed);
  EXPECT_EQ(out.at("device"), "cuda");
  EXPECT_GT(out.at("pp").at("tokens_per_s").get<double>(), 0.0);
  EXPECT_GT(out.at("tg").at("tokens_per_s").get<double>(), 0.0);
  EXPECT_GT(out.at("weight_bytes_per_token").get<double>(), 0.0);
  const double copy = out.at("copy_bandwidth_gb_per_s").get<double>();
  EXPECT_GT(copy, 100.0);  // any CUDA GPU copies faster than 100 GB/s
  EXPECT_GT(out.at("bandwidth_fraction").get<double>(), 0.0);
}

TEST(CudaCli, DeviceCudaOnAnUnsupportedModelFailsWithTheReason) {
  SLM_REQUIRE_CUDA();
  ASSERT_TRUE(fs::exists(slm_exe())) << "expected the slm program at " << slm_exe();
  const fs::path dir = fs::temp_directory_path() / ("slm_cuda_cli_unsupported_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ConvertOptions options;
  options.recipe = "Q4_1";  // a weight type the GPU decoder does not upload
  convert_hf_to_gguf((test_data() / "models" / "llama3").string(), (dir / "q4_1.gguf").string(), options);
  int status = -1;
  const std::string printed = run_command(slm_exe() + " bench " + (dir / "q4_1.gguf").string() +
                                              " -p 4 -n 4 -r 1 --device cuda --no-bandwidth 2>&1",
                                          &status);
  fs::remove_all(dir);
  EXPECT_NE(status, 0);
  EXPECT_NE(printed.find(std::string(dtype_name(DType::Q4_1))), std::string::npos) << printed;
}

}  // namespace
}  // namespace slm
