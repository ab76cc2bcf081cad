// The bundled demo model against the PyTorch training code's own figures (models/demo/
// heldout_ppl.json): prompt token ids, top-10 next-token logits, greedy continuations, and the
// held-out perplexity computed the same way (non-overlapping chunks of 256 tokens after BOS).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slm/engine/generate.hpp"
#include "slm/model/convert.hpp"

namespace fs = std::filesystem;
using namespace slm;

namespace {

const fs::path demo_dir = fs::path(SLM_SOURCE_DIR) / "models" / "demo";

nlohmann::json reference() {
  std::ifstream in(demo_dir / "heldout_ppl.json");
  return nlohmann::json::parse(in);
}

// The demo model as the README's first command runs it: converted to an f16 GGUF.
const std::string& demo_gguf() {
  static const std::string path = [] {
    const fs::path out = fs::temp_directory_path() / ("slm_demo_" + std::to_string(::getpid()) + ".gguf");
    ConvertOptions options;
    options.outtype = DType::F16;
    convert_hf_to_gguf((demo_dir / "hf").string(), out.string(), options);
    return out.string();
  }();
  return path;
}

class DemoModel : public ::testing::TestWithParam<std::string> {};

TEST_P(DemoModel, PromptsMatchPyTorch) {
  const auto model = Model::load(GetParam() == "gguf" ? demo_gguf() : (demo_dir / "hf").string());
  ASSERT_NE(model->tokenizer(), nullptr);
  const auto refs = reference().at("reference");
  ASSERT_EQ(refs.size(), 3u) << "heldout_ppl.json should hold three reference prompts";
  for (const auto& ref : refs) {
    const std::string prompt = ref["prompt"];
    const auto ids = model->tokenizer()->encode(prompt);
    EXPECT_EQ(ids, ref["input_ids"].get<std::vector<int32_t>>()) << prompt;

    Session session(model, SessionOptions{});
    std::vector<float> logits(size_t(model->config().vocab_size));
    session.forward(ids, logits.data(), false);
    const auto top_ids = ref["top10_ids"].get<std::vector<int32_t>>();
    const auto top_logits = ref["top10_logits"].get<std::vector<float>>();
    for (size_t i = 0; i < top_ids.size(); ++i) EXPECT_NEAR(logits[size_t(top_ids[i])], top_logits[i], 2e-3) << prompt;

    session.reset();
    SamplerOptions greedy;
    greedy.temperature = 0.0f;
    Sampler sampler(greedy);
    std::vector<int32_t> generated;
    const auto expected = ref["greedy_ids"].get<std::vector<int32_t>>();
    generate(session, sampler, ids, int64_t(expected.size()), [&](int32_t t) {
      generated.push_back(t);
      return true;
    });
    EXPECT_EQ(generated, expected) << prompt;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, DemoModel, ::testing::Values("safetensors", "gguf"));

TEST(DemoModelCli, GreedyRunPrintsTheGoldenText) {
  // The golden text is the PyTorch greedy continuation, decoded by the demo tokenizer.
  const auto ref = reference()["reference"][0];
  const auto model = Model::load(demo_gguf());
  const std::string golden = model->tokenizer()->decode(ref["greedy_ids"].get<std::vector<int32_t>>());
  const fs::path out = fs::temp_directory_path() / ("slm_demo_run_" + std::to_string(::getpid()));
  const std::string cmd = std::string(SLM_EXE) + " run " + demo_gguf() + " --prompt \"" + ref["prompt"].get<std::string>() +
                          "\" -n " + std::to_string(ref["greedy_ids"].size()) + " --temp 0 >" + out.string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out);
  const std::string printed((std::istreambuf_iterator<char>(in)), {});
  fs::remove(out);
  EXPECT_EQ(printed, golden + "\n");
}

TEST(DemoModelCli, HeldOutPerplexityAgreesWithTraining) {
  const auto ref = reference();
  const fs::path out = fs::temp_directory_path() / ("slm_demo_ppl_" + std::to_string(::getpid()) + ".json");
  const std::string cmd = std::string(SLM_EXE) + " score " + demo_gguf() + " --file " + (demo_dir / "heldout.txt").string() +
                          " --chunk " + std::to_string(ref["chunk_tokens"].get<int>()) + " --json --summary >" + out.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out);
  const auto j = nlohmann::json::parse(in);
  fs::remove(out);
  EXPECT_EQ(j["n_predicted"].get<int64_t>(), ref["tokens"].get<int64_t>());
  const double ppl = j["perplexity"].get<double>();
  const double expected = ref["perplexity"].get<double>();
  EXPECT_LT(std::abs(ppl - expected) / expected, 0.01) << ppl << " vs " << expected;
}

}  // namespace

namespace {

// The committed Q8_0 file is what `slm convert` and `slm quantize` make of the Hugging Face folder.
TEST(DemoModelQ8, CommittedFileIsReproducible) {
  const fs::path tmp = fs::temp_directory_path() / ("slm_demo_q8_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string f16 = (tmp / "f16.gguf").string(), q8 = (tmp / "q8_0.gguf").string();
  const std::string cmd = std::string(SLM_EXE) + " convert " + (demo_dir / "hf").string() + " -o " + f16 +
                          " --outtype f16 2>/dev/null && " + SLM_EXE + " quantize " + f16 + " " + q8 + " Q8_0 >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  const bool same = slurp(q8) == slurp(demo_dir / "demo-q8_0.gguf");
  fs::remove_all(tmp);
  EXPECT_TRUE(same) << "models/demo/demo-q8_0.gguf differs from a fresh convert + quantize of models/demo/hf";
}

// golden-q8_0.txt is llama.cpp's greedy continuation of the same prompt on the same Q8_0 file
// (llama-simple, 32 tokens); slm must print the same text.
TEST(DemoModelQ8, GreedyRunMatchesGolden) {
  std::ifstream golden_in(demo_dir / "golden-q8_0.txt", std::ios::binary);
  const std::string golden((std::istreambuf_iterator<char>(golden_in)), {});
  const fs::path out = fs::temp_directory_path() / ("slm_demo_q8_run_" + std::to_string(::getpid()));
  const std::string cmd = std::string(SLM_EXE) + " run " + (demo_dir / "demo-q8_0.gguf").string() +
                          " --prompt \"It is a truth universally acknowledged\" -n 32 --temp 0 >" + out.string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out);
  const std::string printed((std::istreambuf_iterator<char>(in)), {});
  fs::remove(out);
  EXPECT_EQ(printed, golden + "\n");
}

}  // namespace

namespace {

// With no MODEL, a command uses the demo model: the same golden text as naming the file.
TEST(DemoModelQ8, IsTheDefaultModel) {
  std::ifstream golden_in(demo_dir / "golden-q8_0.txt", std::ios::binary);
  const std::string golden((std::istreambuf_iterator<char>(golden_in)), {});
  const fs::path out = fs::temp_directory_path() / ("slm_demo_default_run_" + std::to_string(::getpid()));
  const std::string cmd = std::string(SLM_EXE) + " run --prompt \"It is a truth universally acknowledged\" -n 32 --temp 0 >" +
                          out.string() + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out);
  const std::string printed((std::istreambuf_iterator<char>(in)), {});
  fs::remove(out);
  EXPECT_EQ(printed, golden + "\n");
  const fs::path info = fs::temp_directory_path() / ("slm_demo_default_info_" + std::to_string(::getpid()));
  ASSERT_EQ(std::system((std::string(SLM_EXE) + " info >" + info.string() + " 2>&1").c_str()), 0);
  std::ifstream info_in(info);
  const std::string text((std::istreambuf_iterator<char>(info_in)), {});
  fs::remove(info);
  EXPECT_NE(text.find("demo-q8_0.gguf"), std::string::npos) << text;
}

}  // namespace
