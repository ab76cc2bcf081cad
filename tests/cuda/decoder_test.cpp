// The prototype GPU decode step against the reference logits of a random-weight Llama 3 fixture
// (logits.npy: transformers' float32 logits for every position of tokens.json), one token at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cuda_test_util.hpp"
#include "slm/backend/cuda/decoder.hpp"
#include "slm/engine/cuda_decoder_setup.hpp"
#include "slm/engine/cuda_session.hpp"
#include "slm/format/quant.hpp"
#include "slm/model/model.hpp"
#include "slm/util/error.hpp"
#include "slm/util/npy.hpp"

namespace slm::cuda {
namespace {

namespace fs = std::filesystem;

fs::path test_data() {
  const char* env = std::getenv("SLM_TEST_DATA");
  return fs::path(env != nullptr && *env != '\0' ? env : SLM_TEST_DATA);
}

using Tweak = std::function<void(DecoderWeights&)>;

void check_fixture(const std::string& name, DType kv_type, double bound, bool graph = true, const Tweak& tweak = {}) {
  const fs::path dir = test_data() / "models" / name;
  const auto model = Model::load(dir.string(), LoadOptions{false});
  const ModelConfig& mc = model->config();
  ASSERT_EQ(cuda_unsupported_reason(*model), "");
  DecoderConfig config = cuda_decoder_config(mc, 300);  // more than one attention split of 256 keys
  config.kv_type = kv_type;
  config.cuda_graph = graph;
  DecoderWeights weights = cuda_decoder_weights(*model);
  if (tweak) tweak(weights);
  LlamaDecoder decoder(config, weights);

  std::ifstream tokens_file(dir / "tokens.json");
  const auto tokens = nlohmann::json::parse(tokens_file).at("tokens").get<std::vector<int32_t>>();
  const NpyArray reference = npy_read((dir / "logits.npy").string());
  ASSERT_EQ(reference.shape.size(), 2u);
  ASSERT_EQ(reference.shape[0], tokens.size());
  ASSERT_EQ(int64_t(reference.shape[1]), mc.vocab_size);
  std::vector<float> logits(size_t(mc.vocab_size));
  double worst = 0.0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::fill(logits.begin(), logits.end(), NAN);
    const int32_t next = decoder.step(tokens[t], int32_t(t), logits.data());
    const float* ref = reference.f32.data() + t * size_t(mc.vocab_size);
    std::vector<double> ref_d(ref, ref + mc.vocab_size);
    const double error = test::relative_l2(logits, ref_d);
    ASSERT_TRUE(std::isfinite(error)) << "position " << t;
    EXPECT_LT(error, bound) << "position " << t;
    worst = std::max(worst, error);
    EXPECT_EQ(next, int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin())) << "position " << t;
  }
  ::testing::Test::RecordProperty("worst_relative_l2", std::to_string(worst));
  std::printf("%s (%s cache, %s): worst relative L2 error of the logits over %zu positions: %.3g\n", name.c_str(),
              std::string(dtype_name(kv_type)).c_str(), graph ? "graph" : "no graph", tokens.size(), worst);
}

TEST(CudaDecoder, Llama3LogitsMatchReferenceF32Cache) {
  SLM_REQUIRE_CUDA();
  check_fixture("llama3", DType::F32, 1e-4);
}

TEST(CudaDecoder, Llama3LogitsMatchReferenceF16Cache) {
  SLM_REQUIRE_CUDA();
  check_fixture("llama3", DType::F16, 5e-3, /*graph=*/false);
}

// v and up in f16, q, k, gate in f32: the projections cannot be stacked and run as separate products.
TEST(CudaDecoder, MixedWeightTypesRunUnstacked) {
  SLM_REQUIRE_CUDA();
  std::vector<std::vector<uint8_t>> converted;
  const auto to_f16 = [&](HostMatrix& m) {
    std::vector<uint8_t> rows(quantized_row_bytes(DType::F16, m.cols) * size_t(m.rows));
    const size_t row_bytes = rows.size() / size_t(m.rows);
    for (int64_t r = 0; r < m.rows; ++r) {
      quantize_row(DType::F16, static_cast<const float*>(m.data) + r * m.cols, rows.data() + size_t(r) * row_bytes,
                   m.cols);
    }
    converted.push_back(std::move(rows));
    m.type = DType::F16;
    m.data = converted.back().data();
  };
  check_fixture("llama3", DType::F32, 1e-2, true, [&](DecoderWeights& w) {
    converted.reserve(2 * w.layers.size());
    for (auto& layer : w.layers) {
      to_f16(layer.wv);
      to_f16(layer.w_up);
    }
  });
}

TEST(CudaDecoder, Qwen2LogitsMatchReference) {
  SLM_REQUIRE_CUDA();
  check_fixture("qwen2", DType::F32, 1e-4);
}

TEST(CudaDecoder, Qwen3LogitsMatchReference) {  // per-head q and k norms
  SLM_REQUIRE_CUDA();
  check_fixture("qwen3", DType::F32, 1e-4);
  check_fixture("qwen3", DType::F16, 5e-3, /*graph=*/false);
}

// Post-norms, a GELU gate, scaled embeddings, local layers with their own RoPE base and window.
TEST(CudaDecoder, Gemma3LogitsMatchReference) {
  SLM_REQUIRE_CUDA();
  check_fixture("gemma3", DType::F32, 1e-4);
  check_fixture("gemma3", DType::F16, 5e-3, /*graph=*/false);
}

TEST(CudaDecoder, RejectsMismatchedShapes) {
  SLM_REQUIRE_CUDA();
  DecoderConfig config;
  config.dim = 64;
  config.n_layers = 1;
  config.n_heads = 4;
  config.n_kv_heads = 2;
  config.head_dim = 16;
  config.ffn_dim = 96;
  config.vocab_size = 32;
  config.max_positions = 8;
  config.inv_freq.assign(8, 1.0f);
  std::vector<float> data(size_t(96 * 64), 0.5f);
  DecoderWeights weights;
  weights.token_embd = {DType::F32, 32, 64, data.data()};
  weights.output = {DType::F32, 32, 64, data.data()};
  weights.output_norm = data.data();
  EXPECT_THROW(LlamaDecoder(config, weights), Error);  // no layers
  DecoderLayerWeights layer;
  layer.attn_norm = layer.ffn_norm = data.data();
  layer.wq = {DType::F32, 64, 64, data.data()};
  layer.wk = layer.wv = {DType::F32, 32, 64, data.data()};
  layer.wo = {DType::F32, 64, 64, data.data()};
  layer.w_gate = layer.w_up = {DType::F32, 96, 64, data.data()};
  layer.w_down = {DType::F32, 64, 64, data.data()};  // expected 64 x 96
  weights.layers.push_back(layer);
  EXPECT_THROW(LlamaDecoder(config, weights), Error);
  weights.layers[0].w_down = {DType::F32, 64, 96, data.data()};
  LlamaDecoder decoder(config, weights);
  EXPECT_THROW(decoder.step(0, 8, nullptr), Error);  // past the cache
  EXPECT_THROW(decoder.step(32, 0, nullptr), Error);  // not a token
  EXPECT_GE(decoder.step(1, 0, nullptr), 0);
  weights.layers[0].q_norm = data.data();  // a q norm without a k norm
  EXPECT_THROW(LlamaDecoder(config, weights), Error);
  weights.layers[0].k_norm = data.data();
  weights.layers[0].bq = data.data();  // biases before the norms: not supported
  EXPECT_THROW(LlamaDecoder(config, weights), Error);
}

}  // namespace
}  // namespace slm::cuda
