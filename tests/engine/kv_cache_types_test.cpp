// KV caches in F16 and Q8_0 (llama.cpp's --cache-type-k/-v): rows stored as the format defines
// them, sizes, errors, and logits against the F32 cache on fixtures through both attention paths
// (a whole prompt at once, then one token at a time).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "../common/models.hpp"
#include "slm/engine/kv_cache.hpp"
#include "slm/engine/session.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"
#include "../common/vectors.hpp"

using namespace slm;

namespace {

namespace fs = std::filesystem;

ModelConfig config_with(int64_t n_kv_heads, int64_t head_dim) {
  ModelConfig c;
  c.n_layers = 2;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = head_dim;
  return c;
}

TEST(KvCacheTypes, RowsAreStoredInTheirFormat) {
  const ModelConfig c = config_with(2, 32);  // kv_dim 64: two Q8_0 blocks per row
  std::vector<float> values(64);
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(float(i) * 0.7f) * 3.0f + 0.01f;
  for (const DType type : {DType::F32, DType::F16, DType::Q8_0}) {
    SCOPED_TRACE(std::string(dtype_name(type)));
    KvCache cache(c, 3, 4, type, DType::F32);
    EXPECT_EQ(cache.k_row_bytes(), quantized_row_bytes(type, 64));
    EXPECT_EQ(cache.v_row_bytes(), 64 * sizeof(float));
    EXPECT_EQ(cache.bytes(), 2 * 3 * 4 * (cache.k_row_bytes() + cache.v_row_bytes()));
    const int32_t block = cache.allocate();
    cache.write_k(1, block, 2, values.data());
    cache.write_v(1, block, 2, values.data());
    std::vector<uint8_t> expected(cache.k_row_bytes());
    quantize_row(type, values.data(), expected.data(), 64);
    const uint8_t* row = cache.k_block(1, block) + 2 * cache.k_row_bytes();
    EXPECT_EQ(std::vector<uint8_t>(row, row + cache.k_row_bytes()), expected);
    std::vector<float> back(64);
    dequantize_row(type, row, back.data(), 64);
    double worst = 0.0;
    for (size_t i = 0; i < back.size(); ++i) worst = std::max(worst, double(std::fabs(back[i] - values[i])));
    EXPECT_LE(worst, type == DType::F32 ? 0.0 : type == DType::F16 ? 2e-3 : 3.2 / 127.0);
    const auto* v = reinterpret_cast<const float*>(cache.v_block(1, block) + 2 * cache.v_row_bytes());
    EXPECT_EQ(std::vector<float>(v, v + 64), values);
  }
}

TEST(KvCacheTypes, TypeErrorsNameWhatIsAccepted) {
  EXPECT_EQ(parse_kv_type("F16", "--cache-type-k"), DType::F16);
  EXPECT_EQ(parse_kv_type("q8_0", "--cache-type-v"), DType::Q8_0);
  try {
    parse_kv_type("q4_0", "--cache-type-k");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--cache-type-k"), std::string::npos) << what;
    EXPECT_NE(what.find("f32, f16 or q8_0"), std::string::npos) << what;
    EXPECT_NE(what.find("q4_0"), std::string::npos) << what;
  }
  EXPECT_THROW(KvCache(config_with(2, 16), 2, 4, DType::Q8_0, DType::F32), Error);  // head_dim 16: not whole blocks
  EXPECT_THROW(KvCache(config_with(2, 32), 2, 4, DType::F32, DType::Q4_0), Error);
}

std::shared_ptr<const Model> fixture(const std::string& name) {
  return Model::load((fs::path(SLM_TEST_DATA) / "models" / name).string());
}

using slm_test::relative_l2;

// Worst relative L2 distance of the typed cache's logits from the F32 cache's, over a 24-token
// prompt (one forward: the matrix attention path) and 8 more tokens one at a time (the per-row path).
double worst_against_f32(const std::string& name, DType k, DType v) {
  const auto model = fixture(name);
  const auto vocab = size_t(model->config().vocab_size);
  SessionOptions f32;
  f32.n_ctx = 64;
  SessionOptions typed = f32;
  typed.cache_type_k = k;
  typed.cache_type_v = v;
  Session a(model, f32), b(model, typed);
  EXPECT_EQ(b.kv_cache_bytes() < a.kv_cache_bytes(), k != DType::F32 || v != DType::F32);
  const auto prompt = slm_test::random_tokens(24, 5, int64_t(vocab));
  std::vector<float> la(prompt.size() * vocab), lb(prompt.size() * vocab);
  a.forward(prompt, la.data(), true);
  b.forward(prompt, lb.data(), true);
  double worst = 0.0;
  for (size_t t = 0; t < prompt.size(); ++t) worst = std::max(worst, relative_l2(lb.data() + t * vocab, la.data() + t * vocab, vocab));
  for (const int32_t token : slm_test::random_tokens(8, 6, int64_t(vocab))) {
    a.forward(std::span<const int32_t>(&token, 1), la.data(), false);
    b.forward(std::span<const int32_t>(&token, 1), lb.data(), false);
    worst = std::max(worst, relative_l2(lb.data(), la.data(), vocab));
  }
  return worst;
}

TEST(KvCacheTypes, LogitsStayCloseToTheF32Cache) {
  for (const char* name : {"qwen3", "gemma3"}) {  // head_dim 32; gemma3 with local and global layers
    const double f16 = worst_against_f32(name, DType::F16, DType::F16);
    const double q8 = worst_against_f32(name, DType::Q8_0, DType::Q8_0);
    const double mixed = worst_against_f32(name, DType::Q8_0, DType::F16);
    std::printf("%s: worst relative L2 against the f32 cache: f16 %.3g, q8_0 %.3g, q8_0 keys + f16 values %.3g\n", name,
                f16, q8, mixed);
    // The types are really used (the logits move), and stay close.
    EXPECT_GT(f16, 0.0) << name;
    EXPECT_GT(q8, f16) << name;
    EXPECT_LT(f16, 5e-3) << name;
    EXPECT_LT(q8, 5e-2) << name;
    EXPECT_LT(mixed, 5e-2) << name;
  }
}

}  // namespace
