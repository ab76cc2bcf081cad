// --cache-type-k / --cache-type-v on run and bench: the cache holds what was asked (its size says
// so), q8_0 runs end to end, and a type that is not offered is a clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "../common/command.hpp"

namespace {

std::string demo() { return (std::filesystem::path(SLM_SOURCE_DIR) / "models" / "demo" / "demo-q8_0.gguf").string(); }

nlohmann::json bench(const std::string& flags) {
  const auto r = slm_test::run_command(std::string(SLM_EXE) + " bench " + demo() +
                                       " -p 8 -n 4 -d 16 -r 1 --device cpu --no-bandwidth --json " + flags);
  EXPECT_EQ(r.rc, 0) << r.out;
  return nlohmann::json::parse(r.out, nullptr, false);
}

TEST(CacheTypes, BenchReportsTheCacheItWasGiven) {
  const auto f32 = bench("");  // f32 by default, as the commands without these flags
  const auto f16 = bench("--cache-type-k f16 --cache-type-v f16");
  const auto q8 = bench("--cache-type-k q8_0 --cache-type-v q8_0");
  ASSERT_TRUE(f16.is_object() && f32.is_object() && q8.is_object());
  EXPECT_EQ(f32["cache_type_k"], "f32");
  EXPECT_EQ(f16["cache_type_k"], "f16");
  EXPECT_EQ(f16["cache_type_v"], "f16");
  EXPECT_EQ(q8["cache_type_k"], "q8_0");
  EXPECT_EQ(f16["depth"], 16);
  const double bytes32 = f32["kv_cache_bytes"].get<double>();
  EXPECT_GT(bytes32, 0.0);
  EXPECT_EQ(f16["kv_cache_bytes"].get<double>() * 2, bytes32);
  EXPECT_EQ(q8["kv_cache_bytes"].get<double>(), bytes32 * 34 / 128);  // 34 bytes per 32 values
  for (const auto* j : {&f16, &f32, &q8}) EXPECT_GT((*j)["tg"]["tokens_per_s"].get<double>(), 0.0);
}

TEST(CacheTypes, RunWithAQ8CacheAndBadTypes) {
  const std::string run = std::string(SLM_EXE) + " run " + demo() + " --prompt 'It is a truth' -n 8 --temp 0 --device cpu ";
  const auto q8 = slm_test::run_command(run + "--cache-type-k q8_0 --cache-type-v q8_0 2>/dev/null");
  EXPECT_EQ(q8.rc, 0);
  EXPECT_GT(q8.out.size(), std::string("It is a truth").size()) << q8.out;
  const auto bad = slm_test::run_command(run + "--cache-type-v bf16 2>&1");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--cache-type-v: expected f32, f16 or q8_0, found 'bf16'"), std::string::npos) << bad.out;
}

}  // namespace
