// `slm quantize` and `slm convert --outtype RECIPE` as a user runs them: per-tensor lines, totals,
// exit codes, and files that load.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "run_slm.hpp"

namespace fs = std::filesystem;

namespace {

using CommandResult = slm_test::Result;
fs::path scratch() { return slm_test::scratch(); }
std::string read_all(const fs::path& p) { return slm_test::slurp(p); }
CommandResult slm(const std::string& args) { return slm_test::run_slm(args); }


const fs::path kDemo = fs::path(SLM_SOURCE_DIR) / "models" / "demo" / "hf";

TEST(QuantizeCli, QuantizesAConvertedModelAndTheResultRuns) {
  if (!fs::exists(kDemo / "model.safetensors")) GTEST_SKIP() << "no demo model";
  const std::string f16 = (scratch() / "demo-f16.gguf").string(), q = (scratch() / "demo-q4km.gguf").string();
  ASSERT_EQ(slm("convert " + kDemo.string() + " -o " + f16 + " --outtype f16").code, 0);
  const CommandResult r = slm("quantize " + f16 + " " + q + " Q4_K_M");
  ASSERT_EQ(r.code, 0) << r.err;
  // one line per tensor (56 in the demo model), e.g. "blk.5.attn_v.weight [128 x 256] f16 -> q6_K ..."
  EXPECT_NE(r.out.find("blk.5.attn_v.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f16 -> q6_K"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f16 -> q4_K"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f32 -> f32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total: 56 tensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("general.file_type 15"), std::string::npos) << r.out;
  const CommandResult info = slm("info " + q + " --metadata");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("general.file_type = 15"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("general.quantization_version = 2"), std::string::npos) << info.out;
  const CommandResult run = slm("run " + q + " --prompt \"It is a truth\" -n 4 --temp 0");
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_FALSE(run.out.empty());
}

TEST(QuantizeCli, ConvertAcceptsRecipes) {
  if (!fs::exists(kDemo / "model.safetensors")) GTEST_SKIP() << "no demo model";
  const std::string q = (scratch() / "demo-q8.gguf").string();
  const CommandResult r = slm("convert " + kDemo.string() + " -o " + q + " --outtype q8_0");
  ASSERT_EQ(r.code, 0) << r.err;
  const CommandResult info = slm("info " + q);
  EXPECT_NE(info.out.find("q8_0"), std::string::npos) << info.out;
  EXPECT_EQ(slm("convert " + kDemo.string() + " -o " + q + " --outtype q9_x").code, 2);
}

TEST(QuantizeCli, BadArgumentsFail) {
  const CommandResult unknown = slm("quantize in.gguf out.gguf Q4_K_X");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("Q4_K_M"), std::string::npos) << unknown.err;  // lists the recipes
  const CommandResult missing = slm("quantize " + (scratch() / "absent.gguf").string() + " out.gguf Q8_0");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("absent.gguf"), std::string::npos) << missing.err;
}

}  // namespace
