// The batched prompt path on the GPU: the fused q/k/v row preparation and the many-query causal
// attention against the CPU backend on random inputs, and LlamaDecoder::prefill against the one-token
// decode step on random F16 and Q8_0 weights (the fixtures' logits through prefill are checked by
// cuda_session_test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "slm/backend/cpu/ops.hpp"
#include "slm/backend/cuda/decoder.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"
#include "slm/util/fp16.hpp"
#include "../common/vectors.hpp"

namespace slm::cuda {
namespace {

using test::random_floats;

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= m)) m = d;  // NaN propagates
  }
  return m;
}

float round_kv(DType kv_type, float f) { return kv_type == DType::F16 ? f16_to_f32(f32_to_f16(f)) : f; }

std::vector<float> cache_to_host(const DeviceBuffer& cache, DType kv_type, size_t n) {
  std::vector<float> out(n);
  if (kv_type == DType::F32) return test::to_host<float>(cache, n);
  const auto bits = test::to_host<uint16_t>(cache, n);
  for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(bits[i]);
  return out;
}

void check_qkv_rows(DType kv_type, bool interleaved, int64_t rope_dim, bool with_bias, float cos_sin_scale = 1.0f) {
  const int64_t rows = 5, n_heads = 6, n_kv = 2, hd = 32, first = 9, capacity = 20, kv_stride = n_kv * hd + 8;
  const int64_t q_dim = n_heads * hd, kv_dim = n_kv * hd, width = q_dim + 2 * kv_dim;
  const auto qkv = random_floats(size_t(rows * width), 31, -2.0f, 2.0f);
  const auto bias = random_floats(size_t(width), 32);
  std::vector<float> inv_freq(size_t(rope_dim / 2));
  for (int64_t i = 0; i < rope_dim / 2; ++i) inv_freq[size_t(i)] = std::pow(10000.0f, -float(2 * i) / float(rope_dim));
  std::vector<int32_t> positions(rows);
  for (int64_t t = 0; t < rows; ++t) positions[size_t(t)] = int32_t(first + t);
  // Reference: bias, then RoPE of the q and k heads of each row, then the k and v parts into the cache.
  std::vector<float> ref = qkv;
  for (int64_t t = 0; t < rows; ++t) {
    float* row = ref.data() + t * width;
    if (with_bias) cpu::add_bias(row, bias.data(), 1, width);
    cpu::rope(row, 1, n_heads + n_kv, hd, rope_dim, &positions[size_t(t)], inv_freq.data(), interleaved, cos_sin_scale);
  }
  const size_t elem = kv_type == DType::F16 ? 2 : 4;
  DeviceBuffer k_cache(size_t(capacity * kv_stride) * elem), v_cache(size_t(capacity * kv_stride) * elem);
  k_cache.fill_bytes(0);
  v_cache.fill_bytes(0);
  DeviceBuffer x_dev = test::to_device(qkv);
  const DeviceBuffer b_dev = test::to_device(bias), f_dev = test::to_device(inv_freq);
  qkv_rows(x_dev.as<float>(), with_bias ? b_dev.as<float>() : nullptr, rows, n_heads, n_kv, hd, rope_dim, nullptr,
           first, f_dev.as<float>(), interleaved, k_cache.data(), v_cache.data(), kv_type, kv_stride, capacity,
           cos_sin_scale);
  const auto got = test::to_host<float>(x_dev, ref.size());
  EXPECT_LT(max_abs_diff(got, ref), 1e-5);
  EXPECT_NE(max_abs_diff(got, qkv), 0.0);
  const auto k_host = cache_to_host(k_cache, kv_type, size_t(capacity * kv_stride));
  const auto v_host = cache_to_host(v_cache, kv_type, size_t(capacity * kv_stride));
  double worst = 0.0;
  for (int64_t p = 0; p < capacity; ++p) {
    for (int64_t i = 0; i < kv_stride; ++i) {
      const size_t at = size_t(p * kv_stride + i);
      float k_ref = 0.0f, v_ref = 0.0f;  // rows and columns never written stay zero
      if (p >= first && p < first + rows && i < kv_dim) {
        const float* row = ref.data() + (p - first) * width;
        k_ref = round_kv(kv_type, row[q_dim + i]);
        v_ref = round_kv(kv_type, row[q_dim + kv_dim + i]);
      }
      worst = std::max({worst, std::fabs(double(k_host[at]) - k_ref), std::fabs(double(v_host[at]) - v_ref)});
    }
  }
  EXPECT_LT(worst, kv_type == DType::F16 ? 2e-3 : 1e-5);
}

TEST(CudaPrefill, QkvRowsMatchBiasRopeAndStore) {
  SLM_REQUIRE_CUDA();
  for (const DType kv_type : {DType::F32, DType::F16}) {
    for (const bool interleaved : {false, true}) {
      for (const int64_t rope_dim : {32, 16}) {
        SCOPED_TRACE(std::string(dtype_name(kv_type)) + (interleaved ? " interleaved" : " neox") + " rope_dim " +
                     std::to_string(rope_dim));
        check_qkv_rows(kv_type, interleaved, rope_dim, rope_dim == 32);
      }
    }
  }
  SCOPED_TRACE("LongRoPE's cos/sin factor");
  check_qkv_rows(DType::F32, false, 24, false, 1.19f);
}

// Rows [first, first + n) attend over a cache filled with random keys and values up to their
// positions; the CPU reference reads the same (rounded) values.
void check_attention_rows(DType kv_type, int64_t head_dim, int64_t sliding_window, int64_t first, int64_t n) {
  cpu::AttentionShape cpu_shape{8, 2, head_dim, sliding_window, 1.0f / std::sqrt(float(head_dim))};
  const AttentionShape shape{8, 2, head_dim, sliding_window, cpu_shape.scale};
  const int64_t capacity = first + n + 7, kv = shape.n_kv_heads * head_dim, kv_stride = kv + 8;
  const int64_t q_dim = shape.n_heads * head_dim, q_stride = q_dim + 2 * kv, out_stride = q_dim + 3;
  const auto keys = random_floats(size_t(capacity * kv_stride), 41, -2.0f, 2.0f);
  const auto values = random_floats(size_t(capacity * kv_stride), 42);
  std::vector<float> k_ref(keys.size()), v_ref(values.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    k_ref[i] = round_kv(kv_type, keys[i]);
    v_ref[i] = round_kv(kv_type, values[i]);
  }
  const auto upload_cache = [&](const std::vector<float>& host) {
    if (kv_type == DType::F32) return test::to_device(host);
    std::vector<uint16_t> bits(host.size());
    for (size_t i = 0; i < host.size(); ++i) bits[i] = f32_to_f16(host[i]);
    return test::to_device(bits);
  };
  const DeviceBuffer k_dev = upload_cache(keys), v_dev = upload_cache(values);
  const auto q = random_floats(size_t(n * q_stride), 43, -2.0f, 2.0f);
  std::vector<float> q_packed(size_t(n * q_dim));
  for (int64_t t = 0; t < n; ++t) std::copy_n(q.begin() + t * q_stride, q_dim, q_packed.begin() + t * q_dim);
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) positions[size_t(t)] = int32_t(first + t);
  std::vector<float> ref(size_t(n * q_dim));
  cpu::attention(q_packed.data(), k_ref.data(), v_ref.data(), kv_stride, positions.data(), n, cpu_shape, ref.data());
  const DeviceBuffer q_dev = test::to_device(q);
  DeviceBuffer out_dev = test::poisoned<float>(size_t(n * out_stride));
  attention_rows(q_dev.as<float>(), q_stride, k_dev.data(), v_dev.data(), kv_type, kv_stride, n, first, capacity, shape,
                 out_dev.as<float>(), out_stride);
  const auto out = test::to_host<float>(out_dev, size_t(n * out_stride));
  std::vector<float> got(ref.size());
  for (int64_t t = 0; t < n; ++t) std::copy_n(out.begin() + t * out_stride, q_dim, got.begin() + t * q_dim);
  EXPECT_LT(max_abs_diff(got, ref), 2e-5);
  for (int64_t t = 0; t < n; ++t) {  // the padding between rows is never written
    for (int64_t i = q_dim; i < out_stride; ++i) EXPECT_TRUE(std::isnan(out[size_t(t * out_stride + i)]));
  }
}

TEST(CudaPrefill, AttentionRowsMatchCpu) {
  SLM_REQUIRE_CUDA();
  for (const DType kv_type : {DType::F32, DType::F16}) {
    for (const int64_t head_dim : {16, 64, 80, 128, 256}) {
      for (const int64_t window : {0, 37}) {
        SCOPED_TRACE(std::string(dtype_name(kv_type)) + " head_dim " + std::to_string(head_dim) + " window " +
                     std::to_string(window));
        check_attention_rows(kv_type, head_dim, window, 0, 70);    // a prompt from the start
        check_attention_rows(kv_type, head_dim, window, 150, 45);  // a chunk after earlier rows
      }
    }
  }
}

TEST(CudaPrefill, AttentionRowsRejectsBadArguments) {
  SLM_REQUIRE_CUDA();
  DeviceBuffer buffer(4096);
  const AttentionShape shape{4, 2, 16, 0, 0.25f};
  float* p = buffer.as<float>();
  EXPECT_THROW(attention_rows(p, 64, p, p, DType::F32, 32, 4, 10, 12, shape, p, 64), Error);  // past the cache
  EXPECT_THROW(attention_rows(p, 32, p, p, DType::F32, 32, 1, 0, 12, shape, p, 64), Error);   // short q rows
  EXPECT_THROW(attention_rows(p, 64, p, p, DType::BF16, 32, 1, 0, 12, shape, p, 64), Error);  // cache type
  const AttentionShape wide{4, 2, 264, 0, 0.0625f};  // past the largest head the kernel takes (256)
  EXPECT_FALSE(attention_rows_supported(264));
  EXPECT_FALSE(attention_rows_supported(0));
  EXPECT_THROW(attention_rows(p, 2112, p, p, DType::F32, 528, 1, 0, 2, wide, p, 2112), Error);
}

// A small random model in `type` (norm weights near 1, q/k/v biases) whose prefill must agree with
// one decode step per token.
struct RandomModel {
  DecoderConfig config;
  std::vector<std::vector<uint8_t>> matrices;
  std::vector<std::vector<float>> vectors;
  DecoderWeights weights;

  RandomModel(DType type, int64_t max_positions, int64_t head_dim = 64) {
    config.dim = 256;
    config.n_layers = 2;
    config.n_heads = 4;
    config.n_kv_heads = 2;
    config.head_dim = head_dim;
    config.ffn_dim = 512;
    config.vocab_size = 1000;
    config.max_positions = max_positions;
    config.norm_eps = 1e-6f;
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      config.inv_freq.push_back(std::pow(10000.0f, -float(2 * i) / float(head_dim)));
    }
    matrices.reserve(32);
    vectors.reserve(32);
    uint32_t seed = 500;
    const auto matrix = [&](int64_t rows, int64_t cols, float scale) {
      const auto values = random_floats(size_t(rows * cols), seed++, -scale, scale);
      const size_t row_bytes = quantized_row_bytes(type, cols);
      std::vector<uint8_t> bytes(row_bytes * size_t(rows));
      for (int64_t r = 0; r < rows; ++r) {
        quantize_row(type, values.data() + r * cols, bytes.data() + size_t(r) * row_bytes, cols);
      }
      matrices.push_back(std::move(bytes));
      return HostMatrix{type, rows, cols, matrices.back().data()};
    };
    const auto vec = [&](int64_t n, float lo, float hi) {
      vectors.push_back(random_floats(size_t(n), seed++, lo, hi));
      return vectors.back().data();
    };
    const int64_t q_dim = config.n_heads * head_dim, kv_dim = config.n_kv_heads * head_dim;
    weights.token_embd = matrix(config.vocab_size, config.dim, 1.0f);
    weights.output = matrix(config.vocab_size, config.dim, 0.1f);
    weights.output_norm = vec(config.dim, 0.8f, 1.2f);
    for (int64_t l = 0; l < config.n_layers; ++l) {
      DecoderLayerWeights layer;
      layer.attn_norm = vec(config.dim, 0.8f, 1.2f);
      layer.ffn_norm = vec(config.dim, 0.8f, 1.2f);
      layer.wq = matrix(q_dim, config.dim, 0.1f);
      layer.wk = matrix(kv_dim, config.dim, 0.1f);
      layer.wv = matrix(kv_dim, config.dim, 0.1f);
      layer.bq = vec(q_dim, -0.5f, 0.5f);
      layer.bk = vec(kv_dim, -0.5f, 0.5f);
      layer.bv = vec(kv_dim, -0.5f, 0.5f);
      layer.wo = matrix(config.dim, q_dim, 0.1f);
      layer.w_gate = matrix(config.ffn_dim, config.dim, 0.1f);
      layer.w_up = matrix(config.ffn_dim, config.dim, 0.1f);
      layer.w_down = matrix(config.dim, config.ffn_dim, 0.1f);
      weights.layers.push_back(layer);
    }
  }
};

using slm_test::relative_l2;

void check_prefill_against_steps(DType type, double bound, int64_t head_dim = 64) {
  const int64_t n = 600;  // two chunks of 512 and more than one attention split
  RandomModel model(type, 700, head_dim);
  model.config.int8_activations = false;  // the steps' products in f32 activations: the reference side
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[size_t(i)] = int32_t((i * 7919 + 13) % model.config.vocab_size);
  const size_t vocab = size_t(model.config.vocab_size);
  std::vector<float> step_logits(size_t(n) * vocab, NAN);
  {
    LlamaDecoder decoder(model.config, model.weights);
    for (int64_t i = 0; i < n; ++i) decoder.step(tokens[size_t(i)], int32_t(i), step_logits.data() + i * vocab);
  }
  LlamaDecoder decoder(model.config, model.weights);
  ASSERT_TRUE(decoder.prefill_supported());
  std::vector<float> all(size_t(n) * vocab, NAN);
  const int64_t split = 550;  // all rows' logits for the first part, then the rest from position 550
  const int32_t next = decoder.prefill(tokens.data(), split, 0, all.data(), true);
  std::vector<float> last(vocab, NAN);
  decoder.prefill(tokens.data() + split, n - split - 1, int32_t(split), last.data(), false);
  double worst = 0.0;
  for (int64_t i = 0; i < split; ++i) {
    const double e = relative_l2(all.data() + i * vocab, step_logits.data() + i * vocab, vocab);
    ASSERT_TRUE(std::isfinite(e)) << "row " << i;
    worst = std::max(worst, e);
  }
  EXPECT_LT(worst, bound);
  const float* row = all.data() + (split - 1) * vocab;
  EXPECT_EQ(next, int32_t(std::max_element(row, row + vocab) - row));
  EXPECT_LT(relative_l2(last.data(), step_logits.data() + (n - 2) * vocab, vocab), bound);
  // The cache the prefill wrote serves the next decode step.
  std::vector<float> after(vocab, NAN);
  decoder.step(tokens[size_t(n - 1)], int32_t(n - 1), after.data());
  const double e_step = relative_l2(after.data(), step_logits.data() + (n - 1) * vocab, vocab);
  EXPECT_LT(e_step, bound);
  std::printf("%s: prefill vs steps, worst relative L2 error %.3g over %lld rows; decode after prefill %.3g\n",
              std::string(dtype_name(type)).c_str(), worst, static_cast<long long>(split), e_step);
}

TEST(CudaPrefill, F32PrefillMatchesSteps) {
  SLM_REQUIRE_CUDA();
  check_prefill_against_steps(DType::F32, 1e-5);
}

TEST(CudaPrefill, F16PrefillMatchesSteps) {
  SLM_REQUIRE_CUDA();
  check_prefill_against_steps(DType::F16, 1e-2);  // activations rounded to f16 for the tensor cores
}

// Gemma 3's head_dim: the prompt attention's largest tile (about 169 KB of shared memory per block).
TEST(CudaPrefill, HeadDim256PrefillMatchesSteps) {
  SLM_REQUIRE_CUDA();
  check_prefill_against_steps(DType::F32, 1e-5, 256);
}

TEST(CudaPrefill, Q8PrefillMatchesSteps) {
  SLM_REQUIRE_CUDA();
  check_prefill_against_steps(DType::Q8_0, 1e-2);
}

TEST(CudaPrefill, RejectsTokensPastTheCache) {
  SLM_REQUIRE_CUDA();
  RandomModel model(DType::F16, 16);
  LlamaDecoder decoder(model.config, model.weights);
  const std::vector<int32_t> tokens(10, 3);
  EXPECT_THROW(decoder.prefill(tokens.data(), 10, 8), Error);
  const std::vector<int32_t> bad = {1, 2, 1000};
  EXPECT_THROW(decoder.prefill(bad.data(), 3, 0), Error);
  EXPECT_GE(decoder.prefill(tokens.data(), 10, 0), 0);
}

}  // namespace
}  // namespace slm::cuda
