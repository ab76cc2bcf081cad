// RMSNorm, RoPE, element-wise operations, the KV-cache write, attention of one query and argmax on the
// GPU against the CPU backend (slm::cpu) on random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "slm/backend/cpu/ops.hpp"
#include "slm/engine/logit_rows.hpp"
#include "slm/util/error.hpp"
#include "slm/util/fp16.hpp"

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

TEST(CudaOps, RmsNormMatchesCpu) {
  SLM_REQUIRE_CUDA();
  const int64_t rows = 3, n = 1536;
  const auto x = random_floats(size_t(rows * n), 1, -3.0f, 3.0f);
  const auto w = random_floats(size_t(n), 2, 0.5f, 1.5f);
  std::vector<float> ref(x.size());
  cpu::rms_norm(x.data(), w.data(), ref.data(), rows, n, 1e-6f);
  const DeviceBuffer x_dev = test::to_device(x), w_dev = test::to_device(w);
  DeviceBuffer y_dev = test::poisoned<float>(x.size());
  rms_norm(x_dev.as<float>(), w_dev.as<float>(), y_dev.as<float>(), rows, n, 1e-6f);
  EXPECT_LT(max_abs_diff(test::to_host<float>(y_dev, x.size()), ref), 2e-5);
}

// Qwen3's q and k norms: rows of [q heads | k heads | v heads] with a stride; v stays as it was.
TEST(CudaOps, HeadRmsNormMatchesCpuAndLeavesTheRestAlone) {
  SLM_REQUIRE_CUDA();
  const int64_t rows = 5, n_q = 6, n_k = 2, hd = 128, stride = (n_q + 2 * n_k) * hd + 8;
  const auto x = random_floats(size_t(rows * stride), 3, -3.0f, 3.0f);
  const auto wq = random_floats(size_t(hd), 4, 0.5f, 1.5f), wk = random_floats(size_t(hd), 5, 0.5f, 1.5f);
  std::vector<float> ref = x;
  for (int64_t t = 0; t < rows; ++t) {
    float* row = ref.data() + t * stride;
    cpu::rms_norm(row, wq.data(), row, n_q, hd, 1e-6f);
    cpu::rms_norm(row + n_q * hd, wk.data(), row + n_q * hd, n_k, hd, 1e-6f);
  }
  DeviceBuffer x_dev = test::to_device(x);
  const DeviceBuffer wq_dev = test::to_device(wq), wk_dev = test::to_device(wk);
  head_rms_norm(x_dev.as<float>(), rows, stride, n_q, n_k, hd, wq_dev.as<float>(), wk_dev.as<float>(), 1e-6f);
  const auto got = test::to_host<float>(x_dev, x.size());
  EXPECT_LT(max_abs_diff(got, ref), 2e-5);
  for (int64_t t = 0; t < rows; ++t) {  // the v heads and the padding are untouched
    for (int64_t i = (n_q + n_k) * hd; i < stride; ++i) ASSERT_EQ(got[size_t(t * stride + i)], x[size_t(t * stride + i)]);
  }
  EXPECT_THROW(head_rms_norm(x_dev.as<float>(), rows, 100, n_q, n_k, hd, wq_dev.as<float>(), wk_dev.as<float>(), 1e-6f),
               Error);
}

TEST(CudaOps, ElementwiseMatchCpu) {
  SLM_REQUIRE_CUDA();
  const int64_t rows = 4, n = 3000;
  const auto gate = random_floats(size_t(rows * n), 3, -8.0f, 8.0f);
  const auto up = random_floats(size_t(rows * n), 4);
  const auto bias = random_floats(size_t(n), 5);

  std::vector<float> ref = gate;
  cpu::silu_mul(ref.data(), up.data(), rows * n);
  DeviceBuffer g_dev = test::to_device(gate);
  const DeviceBuffer u_dev = test::to_device(up), b_dev = test::to_device(bias);
  silu_mul(g_dev.as<float>(), u_dev.as<float>(), rows * n);
  EXPECT_LT(max_abs_diff(test::to_host<float>(g_dev, ref.size()), ref), 1e-5);

  cpu::add(ref.data(), up.data(), rows * n);
  add(g_dev.as<float>(), u_dev.as<float>(), rows * n);
  EXPECT_LT(max_abs_diff(test::to_host<float>(g_dev, ref.size()), ref), 1e-5);

  cpu::add_bias(ref.data(), bias.data(), rows, n);
  add_bias(g_dev.as<float>(), b_dev.as<float>(), rows, n);
  EXPECT_LT(max_abs_diff(test::to_host<float>(g_dev, ref.size()), ref), 1e-5);

  cpu::scale(ref.data(), 1.75f, rows * n);
  scale(g_dev.as<float>(), 1.75f, rows * n);
  EXPECT_LT(max_abs_diff(test::to_host<float>(g_dev, ref.size()), ref), 1e-5);
}

// Gemma's gate: gelu_tanh(gate) * up, in place and from rows of [gate | up].
TEST(CudaOps, GeluTanhMulMatchesCpu) {
  SLM_REQUIRE_CUDA();
  const int64_t rows = 3, n = 1000;
  const auto gate_up = random_floats(size_t(rows * 2 * n), 6, -6.0f, 6.0f);
  std::vector<float> gate(size_t(rows * n)), up(size_t(rows * n));
  for (int64_t t = 0; t < rows; ++t) {
    std::copy_n(gate_up.begin() + t * 2 * n, n, gate.begin() + t * n);
    std::copy_n(gate_up.begin() + t * 2 * n + n, n, up.begin() + t * n);
  }
  std::vector<float> ref = gate;
  cpu::gelu_tanh_mul(ref.data(), up.data(), rows * n);
  ASSERT_GT(max_abs_diff(ref, gate), 0.1);
  DeviceBuffer g_dev = test::to_device(gate);
  const DeviceBuffer u_dev = test::to_device(up), gu_dev = test::to_device(gate_up);
  gelu_tanh_mul(g_dev.as<float>(), u_dev.as<float>(), rows * n);
  EXPECT_LT(max_abs_diff(test::to_host<float>(g_dev, ref.size()), ref), 1e-5);
  DeviceBuffer out = test::poisoned<float>(ref.size());
  gelu_tanh_mul_rows(gu_dev.as<float>(), rows, n, out.as<float>());
  EXPECT_LT(max_abs_diff(test::to_host<float>(out, ref.size()), ref), 1e-5);
}

TEST(CudaOps, RopeMatchesCpuBothLayouts) {
  SLM_REQUIRE_CUDA();
  const int64_t rows = 3, heads = 4, head_dim = 128;
  const std::vector<int32_t> positions = {0, 17, 31999};
  for (const bool interleaved : {false, true}) {
    for (const int64_t rope_dim : {head_dim, head_dim / 2}) {
      SCOPED_TRACE(std::string(interleaved ? "interleaved" : "neox") + " rope_dim " + std::to_string(rope_dim));
      const auto x = random_floats(size_t(rows * heads * head_dim), 6 + uint32_t(rope_dim));
      std::vector<float> inv_freq(size_t(rope_dim / 2));
      for (int64_t i = 0; i < rope_dim / 2; ++i) inv_freq[size_t(i)] = std::pow(500000.0f, -float(2 * i) / float(rope_dim));
      std::vector<float> ref = x;
      cpu::rope(ref.data(), rows, heads, head_dim, rope_dim, positions.data(), inv_freq.data(), interleaved);
      DeviceBuffer x_dev = test::to_device(x);
      const DeviceBuffer p_dev = test::to_device(positions), f_dev = test::to_device(inv_freq);
      rope(x_dev.as<float>(), rows, heads, head_dim, rope_dim, p_dev.as<int32_t>(), f_dev.as<float>(), interleaved);
      const auto got = test::to_host<float>(x_dev, x.size());
      EXPECT_LT(max_abs_diff(got, ref), 1e-5);
      EXPECT_NE(max_abs_diff(got, x), 0.0);  // it rotated something
    }
  }
}

// Caches of `capacity` rows filled through store_kv, one position at a time, in f32 or f16; the CPU
// reference reads the same values (rounded to f16 where the cache holds f16).
void check_attention(DType kv_type, int64_t sliding_window) {
  cpu::AttentionShape cpu_shape;
  cpu_shape.n_heads = 8;
  cpu_shape.n_kv_heads = 2;
  cpu_shape.head_dim = 64;
  cpu_shape.sliding_window = sliding_window;
  cpu_shape.scale = 1.0f / 8.0f;
  const AttentionShape shape{cpu_shape.n_heads, cpu_shape.n_kv_heads, cpu_shape.head_dim, sliding_window,
                             cpu_shape.scale};
  const int64_t capacity = 700, kv = shape.n_kv_heads * shape.head_dim, stride = kv + 16;
  const size_t elem = kv_type == DType::F16 ? 2 : 4;
  DeviceBuffer k_cache(size_t(capacity * stride) * elem), v_cache(size_t(capacity * stride) * elem);
  k_cache.fill_bytes(0xff);  // rows never written stay NaN: reading one would show
  v_cache.fill_bytes(0xff);
  std::vector<float> k_host(size_t(capacity * stride), 0.0f), v_host(k_host.size(), 0.0f);
  const auto keys = random_floats(size_t(capacity * kv), 21, -2.0f, 2.0f);
  const auto values = random_floats(size_t(capacity * kv), 22);
  DeviceBuffer k_dev(size_t(kv) * 4), v_dev(size_t(kv) * 4), pos_dev(4), out_dev(size_t(shape.n_heads * shape.head_dim) * 4);
  DeviceBuffer scratch(attention_scratch_floats(shape, capacity) * 4);
  scratch.fill_bytes(0);  // the per-head counters start at zero
  const auto round = [&](float f) { return kv_type == DType::F16 ? f16_to_f32(f32_to_f16(f)) : f; };
  const std::vector<int32_t> checked = {0, 1, 255, 256, 300, 511, 699};
  for (int32_t p = 0; p < capacity; ++p) {
    k_dev.upload(keys.data() + p * kv, size_t(kv) * 4);
    v_dev.upload(values.data() + p * kv, size_t(kv) * 4);
    pos_dev.upload(&p, 4);
    store_kv(k_dev.as<float>(), v_dev.as<float>(), k_cache.data(), v_cache.data(), kv_type, stride, kv,
             pos_dev.as<int32_t>(), capacity);
    for (int64_t i = 0; i < kv; ++i) {
      k_host[size_t(p * stride + i)] = round(keys[size_t(p * kv + i)]);
      v_host[size_t(p * stride + i)] = round(values[size_t(p * kv + i)]);
    }
    if (std::find(checked.begin(), checked.end(), p) == checked.end()) continue;
    SCOPED_TRACE("position " + std::to_string(p));
    const auto q = random_floats(size_t(shape.n_heads * shape.head_dim), 100 + uint32_t(p), -2.0f, 2.0f);
    std::vector<float> ref(q.size());
    cpu::attention(q.data(), k_host.data(), v_host.data(), stride, &p, 1, cpu_shape, ref.data());
    const DeviceBuffer q_dev = test::to_device(q);
    out_dev.fill_bytes(0xff);
    attention_decode(q_dev.as<float>(), k_cache.data(), v_cache.data(), kv_type, stride, pos_dev.as<int32_t>(),
                     capacity, shape, scratch.as<float>(), out_dev.as<float>());
    EXPECT_LT(max_abs_diff(test::to_host<float>(out_dev, q.size()), ref), 2e-5);
  }
  // A position outside the cache reads nothing and gives NaN.
  const int32_t outside = int32_t(capacity);
  pos_dev.upload(&outside, 4);
  const DeviceBuffer q_dev = test::to_device(random_floats(size_t(shape.n_heads * shape.head_dim), 99));
  attention_decode(q_dev.as<float>(), k_cache.data(), v_cache.data(), kv_type, stride, pos_dev.as<int32_t>(), capacity,
                   shape, scratch.as<float>(), out_dev.as<float>());
  const auto nan_out = test::to_host<float>(out_dev, size_t(shape.n_heads * shape.head_dim));
  EXPECT_TRUE(std::all_of(nan_out.begin(), nan_out.end(), [](float f) { return std::isnan(f); }));
}

TEST(CudaOps, AttentionDecodeMatchesCpuF32Cache) {
  SLM_REQUIRE_CUDA();
  check_attention(DType::F32, 0);
}

TEST(CudaOps, AttentionDecodeMatchesCpuF16Cache) {
  SLM_REQUIRE_CUDA();
  check_attention(DType::F16, 0);
}

TEST(CudaOps, AttentionDecodeSlidingWindow) {
  SLM_REQUIRE_CUDA();
  check_attention(DType::F32, 100);
}

TEST(CudaOps, ArgmaxFirstLargestSkippingNan) {
  SLM_REQUIRE_CUDA();
  const int64_t n = 151936;
  auto x = random_floats(size_t(n), 31, -10.0f, 10.0f);
  x[1000] = std::numeric_limits<float>::quiet_NaN();
  x[90000] = 50.0f;
  x[120000] = 50.0f;  // a tie: the first wins
  x[5] = std::numeric_limits<float>::quiet_NaN();
  DeviceBuffer x_dev = test::to_device(x);
  DeviceBuffer index = test::poisoned<int32_t>(1);
  argmax(x_dev.as<float>(), n, index.as<int32_t>());
  EXPECT_EQ(test::to_host<int32_t>(index, 1)[0], 90000);
  x[90000] = 1.0f;
  x_dev.upload(x.data(), x.size() * 4);
  argmax(x_dev.as<float>(), n, index.as<int32_t>());
  EXPECT_EQ(test::to_host<int32_t>(index, 1)[0], 120000);
  x[120000] = -50.0f;
  x_dev.upload(x.data(), x.size() * 4);
  argmax(x_dev.as<float>(), n, index.as<int32_t>());
  int32_t expected = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (!std::isnan(x[size_t(i)]) && (std::isnan(x[size_t(expected)]) || x[size_t(i)] > x[size_t(expected)])) expected = i;
  }
  EXPECT_EQ(test::to_host<int32_t>(index, 1)[0], expected);
}

// The many-block argmax (scratch) against the single-block one and a host scan, on sizes around its
// block split, twice on the same scratch (the ticket counter must be reset).
TEST(CudaOps, ArgmaxWithScratchMatchesSingleBlock) {
  SLM_REQUIRE_CUDA();
  DeviceBuffer scratch(argmax_scratch_bytes());
  scratch.fill_bytes(0);
  DeviceBuffer index = test::poisoned<int32_t>(2);
  for (const int64_t n : {int64_t(1), int64_t(2047), int64_t(2049), int64_t(151936), int64_t(1000003)}) {
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE("n " + std::to_string(n) + " round " + std::to_string(round));
      auto x = random_floats(size_t(n), 40 + uint32_t(round), -10.0f, 10.0f);
      if (n > 10) {
        x[size_t(n / 3)] = 99.0f;
        x[size_t(n - 2)] = 99.0f;  // a tie across blocks: the first wins
        x[0] = std::numeric_limits<float>::quiet_NaN();
      }
      if (round == 1 && n > 10) x[size_t(n / 3)] = 0.0f;
      int32_t expected = -1;
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isnan(x[size_t(i)]) && (expected < 0 || x[size_t(i)] > x[size_t(expected)])) expected = int32_t(i);
      }
      const DeviceBuffer x_dev = test::to_device(x);
      argmax(x_dev.as<float>(), n, index.as<int32_t>(), scratch.data());
      argmax(x_dev.as<float>(), n, index.as<int32_t>() + 1);
      const auto got = test::to_host<int32_t>(index, 2);
      EXPECT_EQ(got[0], expected);
      EXPECT_EQ(got[1], expected);
    }
  }
  const std::vector<float> all_nan(5000, std::numeric_limits<float>::quiet_NaN());
  const DeviceBuffer nan_dev = test::to_device(all_nan);
  argmax(nan_dev.as<float>(), 5000, index.as<int32_t>(), scratch.data());
  EXPECT_EQ(test::to_host<int32_t>(index, 1)[0], -1);
}

// Rows of logits summarized on the device (lse, top k) against the host's summary of the same rows:
// vocabularies around the kernel's chunk of 4096 and Gemma's 262144, exact ties (multiples of 1/8),
// NaNs, a row with fewer numbers than k.
TEST(CudaOps, TopLogitsMatchTheHostSummary) {
  SLM_REQUIRE_CUDA();
  for (const int64_t vocab : {int64_t(1), int64_t(50), int64_t(4096), int64_t(4097), int64_t(151936), int64_t(262144)}) {
    for (const int k : {1, 40, 64}) {
      SCOPED_TRACE("vocab " + std::to_string(vocab) + " k " + std::to_string(k));
      const int64_t rows = 5;
      auto x = random_floats(size_t(rows * vocab), uint32_t(vocab + k), -12.0f, 12.0f);
      for (auto& v : x) v = std::round(v * 8.0f) / 8.0f;
      x[0] = std::numeric_limits<float>::quiet_NaN();
      if (vocab > 10) {
        x[size_t(vocab + 3)] = 40.0f;  // row 1: a tie at the top, the lower id first
        x[size_t(2 * vocab - 1)] = 40.0f;
        for (int64_t i = 2 * vocab; i < 3 * vocab; i += 2) x[size_t(i)] = std::numeric_limits<float>::quiet_NaN();
      }
      const DeviceBuffer x_dev = test::to_device(x);
      DeviceBuffer lse = test::poisoned<float>(size_t(rows)), ids = test::poisoned<int32_t>(size_t(rows * k)),
                   values = test::poisoned<float>(size_t(rows * k));
      DeviceBuffer scratch(top_logits_scratch_bytes(rows, vocab, k));
      top_logits(x_dev.as<float>(), rows, vocab, k, lse.as<float>(), ids.as<int32_t>(), values.as<float>(),
                 scratch.data());
      const auto got_lse = test::to_host<float>(lse, size_t(rows));
      const auto got_ids = test::to_host<int32_t>(ids, size_t(rows * k));
      const auto got_values = test::to_host<float>(values, size_t(rows * k));
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = x.data() + r * vocab;
        std::vector<int32_t> want_ids(size_t(k), -1);
        std::vector<float> want_values(size_t(k), 0.0f);
        const int32_t n = slm::top_logits(row, vocab, k, want_ids.data(), want_values.data());
        const float want_lse = slm::log_sum_exp(row, vocab);
        if (n == 0) {
          EXPECT_EQ(got_lse[size_t(r)], -INFINITY);
        } else {
          EXPECT_NEAR(got_lse[size_t(r)], want_lse, 2e-5 * std::max(1.0f, std::fabs(want_lse))) << "row " << r;
        }
        for (int j = 0; j < k; ++j) {
          const size_t at = size_t(r * k + j);
          if (j < n) {
            EXPECT_EQ(got_ids[at], want_ids[size_t(j)]) << "row " << r << " at " << j;
            EXPECT_EQ(got_values[at], want_values[size_t(j)]) << "row " << r << " at " << j;
          } else {
            EXPECT_EQ(got_ids[at], -1) << "row " << r << " past the end at " << j;
          }
        }
      }
    }
  }
  DeviceBuffer scratch(top_logits_scratch_bytes(1, 100, 65));
  DeviceBuffer out(4096);
  EXPECT_THROW(top_logits(out.as<float>(), 1, 100, 65, out.as<float>(), out.as<int32_t>(), out.as<float>(),
                          scratch.data()),
               Error);
}

TEST(CudaOps, DeviceInfoAndBuffers) {
  SLM_REQUIRE_CUDA();
  const DeviceInfo info = device_info();
  EXPECT_FALSE(info.name.empty());
  EXPECT_GT(info.multiprocessors, 0);
  DeviceBuffer buffer(64);
  const auto data = random_floats(16, 41);
  buffer.upload(data.data(), 64);
  EXPECT_EQ(test::to_host<float>(buffer, 16), data);
  EXPECT_THROW(buffer.upload(data.data(), 64, 8), Error);  // past the end
  DeviceBuffer moved = std::move(buffer);
  EXPECT_EQ(buffer.data(), nullptr);
  EXPECT_EQ(test::to_host<float>(moved, 16), data);
}

TEST(CudaOps, AvailabilityIsABoolean) {
  // Without a device this must answer false, not throw or abort.
  const bool available = cuda_available();
  if (!available) {
    EXPECT_THROW(device_info(), Error);
  }
}

}  // namespace
}  // namespace slm::cuda
