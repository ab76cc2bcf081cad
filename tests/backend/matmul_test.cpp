// Matrix products and conversions of every instruction-set path against a float64 reference.
#include "slm/backend/cpu/matmul.hpp"

#include <gtest/gtest.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "slm/util/error.hpp"
#include "slm/util/fp16.hpp"

namespace slm::cpu {
namespace {

// Weights of one type with their exact f32 values (what the kernels must multiply by).
struct Weights {
  DType type;
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // [n_out][n_in], dequantized
};

float random_nonzero(std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float v = 0.0f;
  while (v == 0.0f) v = dist(rng);
  return v;
}

Weights make_weights(DType type, int64_t n_out, int64_t n_in, std::mt19937& rng) {
  Weights w{type, {}, std::vector<float>(size_t(n_out * n_in))};
  const size_t n = w.values.size();
  if (type == DType::F32) {
    w.bytes.resize(n * 4);
    for (size_t i = 0; i < n; ++i) {
      w.values[i] = random_nonzero(rng);
      std::memcpy(w.bytes.data() + i * 4, &w.values[i], 4);
    }
    return w;
  }
  w.bytes.resize(n * 2);
  for (size_t i = 0; i < n; ++i) {
    const float v = random_nonzero(rng);
    const uint16_t bits = type == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
    w.values[i] = type == DType::F16 ? f16_to_f32(bits) : bf16_to_f32(bits);
    std::memcpy(w.bytes.data() + i * 2, &bits, 2);
  }
  return w;
}

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = random_nonzero(rng);
  return v;
}

std::vector<double> reference(const Weights& w, int64_t n_out, int64_t n_in, const std::vector<float>& x, int64_t n_tokens) {
  std::vector<double> y(size_t(n_out * n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t o = 0; o < n_out; ++o) {
      double sum = 0.0;
      for (int64_t i = 0; i < n_in; ++i) sum += double(w.values[size_t(o * n_in + i)]) * double(x[size_t(t * n_in + i)]);
      y[size_t(t * n_out + o)] = sum;
    }
  }
  return y;
}

// Relative L2 error of y against the reference; infinite if any output is not finite.
double relative_error(const std::vector<float>& y, const std::vector<double>& ref) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) return std::numeric_limits<double>::infinity();
    diff += (double(y[i]) - ref[i]) * (double(y[i]) - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
}

bool supported(Isa isa) { return int(isa) <= int(detect_isa()); }

std::vector<float> run_matmul(Isa isa, const Weights& w, int64_t n_out, int64_t n_in, const std::vector<float>& x,
                              int64_t n_tokens) {
  std::vector<float> y(size_t(n_out * n_tokens), std::numeric_limits<float>::quiet_NaN());
  matmul_isa(isa, w.type, w.bytes.data(), n_out, n_in, x.data(), n_tokens, y.data());
  return y;
}

struct Case {
  Isa isa;
  DType type;
};

void PrintTo(const Case& c, std::ostream* os) { *os << isa_name(c.isa) << " " << dtype_name(c.type); }

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(isa_name(info.param.isa)) + "_" + std::string(dtype_name(info.param.type));
}

class MatmulTest : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!supported(GetParam().isa)) GTEST_SKIP() << "this CPU has no " << isa_name(GetParam().isa) << " path";
  }

  void check(int64_t n_out, int64_t n_in, int64_t n_tokens, uint32_t seed) {
    std::mt19937 rng(seed);
    const Weights w = make_weights(GetParam().type, n_out, n_in, rng);
    const std::vector<float> x = random_vector(size_t(n_tokens * n_in), rng);
    const std::vector<float> y = run_matmul(GetParam().isa, w, n_out, n_in, x, n_tokens);
    const double error = relative_error(y, reference(w, n_out, n_in, x, n_tokens));
    EXPECT_LT(error, 1e-5) << "n_out " << n_out << " n_in " << n_in << " n_tokens " << n_tokens;
  }
};

TEST_P(MatmulTest, OddShapesMatchFloat64Reference) {
  uint32_t seed = 1;
  for (int64_t n_tokens : {1, 2, 5, 7, 8, 33, 64}) {
    for (int64_t n_out : {1, 3, 17, 100}) {
      for (int64_t n_in : {1, 7, 16, 31, 33, 100, 257}) check(n_out, n_in, n_tokens, seed++);
    }
  }
}

TEST_P(MatmulTest, ModelShapesMatchFloat64Reference) {
  // Generation and prompt sizes with the model's widths; several packed blocks, panels and threads.
  check(128, 896, 1, 11);
  check(300, 896, 1, 12);
  check(67, 4864, 1, 13);
  check(200, 896, 3, 14);
  check(300, 896, 40, 15);
  check(96, 4864, 13, 16);
  check(1000, 300, 4, 17);
}

INSTANTIATE_TEST_SUITE_P(Paths, MatmulTest,
                         testing::Values(Case{Isa::scalar, DType::F32}, Case{Isa::scalar, DType::F16},
                                         Case{Isa::scalar, DType::BF16}, Case{Isa::avx2, DType::F32},
                                         Case{Isa::avx2, DType::F16}, Case{Isa::avx2, DType::BF16},
                                         Case{Isa::avx512, DType::F32}, Case{Isa::avx512, DType::F16},
                                         Case{Isa::avx512, DType::BF16}),
                         case_name);

TEST(Matmul, DefaultPathIsTheDetectedOne) {
  std::mt19937 rng(21);
  const int64_t n_out = 77, n_in = 133;
  for (int64_t n_tokens : {1, 9}) {
    const Weights w = make_weights(DType::F16, n_out, n_in, rng);
    const std::vector<float> x = random_vector(size_t(n_tokens * n_in), rng);
    std::vector<float> y(size_t(n_out * n_tokens), std::numeric_limits<float>::quiet_NaN());
    matmul(w.type, w.bytes.data(), n_out, n_in, x.data(), n_tokens, y.data());
    const std::vector<float> expected = run_matmul(detect_isa(), w, n_out, n_in, x, n_tokens);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], expected[i]) << "output " << i;
  }
}

TEST(Matmul, ResultsDoNotDependOnTheThreadCount) {
  std::mt19937 rng(22);
  const int64_t n_out = 520, n_in = 300;
  const int saved = omp_get_max_threads();
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!supported(isa)) continue;
    for (int64_t n_tokens : {1, 2, 20}) {
      const Weights w = make_weights(DType::BF16, n_out, n_in, rng);
      const std::vector<float> x = random_vector(size_t(n_tokens * n_in), rng);
      omp_set_num_threads(1);
      const std::vector<float> one = run_matmul(isa, w, n_out, n_in, x, n_tokens);
      omp_set_num_threads(3);
      const std::vector<float> three = run_matmul(isa, w, n_out, n_in, x, n_tokens);
      omp_set_num_threads(saved);
      for (size_t i = 0; i < one.size(); ++i) {
        ASSERT_EQ(one[i], three[i]) << isa_name(isa) << " n_tokens " << n_tokens << " output " << i;
      }
    }
  }
}

// Memory whose last byte is followed by an inaccessible page: reading past the end faults.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t bytes) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    pages_ = (bytes + page - 1) / page * page + page;
    void* base = mmap(nullptr, pages_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<uint8_t*>(base);
    if (mprotect(base_ + pages_ - page, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    data_ = base_ + pages_ - page - bytes;
  }
  ~GuardedBuffer() { munmap(base_, pages_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  uint8_t* data() { return data_; }

 private:
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t pages_ = 0;
};

TEST(Matmul, ReadsNothingPastItsInputs) {
  std::mt19937 rng(23);
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!supported(isa)) continue;
    for (DType type : {DType::F32, DType::F16, DType::BF16}) {
      for (int64_t n_tokens : {1, 3, 7, 8, 13}) {
        for (int64_t n_in : {1, 9, 17, 45, 391}) {
          const int64_t n_out = 37;
          const Weights w = make_weights(type, n_out, n_in, rng);
          const std::vector<float> x = random_vector(size_t(n_tokens * n_in), rng);
          GuardedBuffer w_guarded(w.bytes.size()), x_guarded(x.size() * sizeof(float));
          std::memcpy(w_guarded.data(), w.bytes.data(), w.bytes.size());
          std::memcpy(x_guarded.data(), x.data(), x.size() * sizeof(float));
          std::vector<float> y(size_t(n_out * n_tokens), std::numeric_limits<float>::quiet_NaN());
          matmul_isa(isa, type, w_guarded.data(), n_out, n_in, reinterpret_cast<const float*>(x_guarded.data()),
                     n_tokens, y.data());
          EXPECT_LT(relative_error(y, reference(w, n_out, n_in, x, n_tokens)), 1e-5)
              << isa_name(isa) << " " << dtype_name(type) << " n_in " << n_in << " n_tokens " << n_tokens;
        }
      }
    }
  }
  for (DType type : {DType::F32, DType::F16, DType::BF16}) {
    for (int64_t n : {1, 7, 15, 33}) {
      const size_t element = type == DType::F32 ? 4 : 2;
      GuardedBuffer src(size_t(n) * element);
      std::memset(src.data(), 0x3c, size_t(n) * element);
      std::vector<float> dst(static_cast<size_t>(n));
      to_f32(type, src.data(), dst.data(), n);
      for (float v : dst) EXPECT_TRUE(std::isfinite(v));
    }
  }
}

TEST(Matmul, EmptyInputsGiveZeros) {
  std::vector<float> y(6, std::numeric_limits<float>::quiet_NaN());
  const float x = 1.0f;
  const float w = 1.0f;
  matmul(DType::F32, &w, 3, 0, &x, 2, y.data());
  for (float v : y) EXPECT_EQ(v, 0.0f);
  matmul(DType::F32, nullptr, 0, 5, nullptr, 3, nullptr);  // nothing to compute
}

TEST(Matmul, RejectsUnsupportedTypes) {
  std::vector<uint8_t> w(34 * 4, 1);
  std::vector<float> x(32, 1.0f), y(4);
  // (block formats go to matmul_quant_ref, tested in matmul_quant_test.cpp)
  for (DType type : {DType::IQ2_XXS, DType::TQ1_0, DType::I32, DType::F64}) {
    try {
      matmul(type, w.data(), 4, 32, x.data(), 1, y.data());
      FAIL() << "expected an error for " << dtype_name(type);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::unsupported) << e.what();
    }
  }
}

TEST(Matmul, RejectsBadArguments) {
  std::vector<float> w(16, 1.0f), x(4, 1.0f), y(4);
  try {
    matmul(DType::F32, w.data(), -1, 4, x.data(), 1, y.data());
    FAIL() << "expected an error for a negative size";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << e.what();
  }
  try {
    matmul(DType::F32, nullptr, 4, 4, x.data(), 1, y.data());
    FAIL() << "expected an error for null weights";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << e.what();
  }
  if (detect_isa() != Isa::avx512) {
    try {
      matmul_isa(Isa::avx512, DType::F32, w.data(), 4, 4, x.data(), 1, y.data());
      FAIL() << "expected an error for a path this CPU lacks";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::unsupported) << e.what();
    }
  }
}

TEST(Matmul, IsaNames) {
  EXPECT_STREQ(isa_name(Isa::scalar), "scalar");
  EXPECT_STREQ(isa_name(Isa::avx2), "avx2");
  EXPECT_STREQ(isa_name(Isa::avx512), "avx512");
}

TEST(ToF32, HalfTypesConvertExactly) {
  std::mt19937 rng(31);
  for (DType type : {DType::F16, DType::BF16}) {
    for (int64_t n : {1, 5, 8, 15, 16, 17, 100, 1027}) {
      std::vector<uint16_t> src(static_cast<size_t>(n));
      for (uint16_t& h : src) h = uint16_t(rng());  // every bit pattern: subnormals, infinities, NaNs
      std::vector<float> dst(static_cast<size_t>(n) + 1, 12345.0f);
      to_f32(type, src.data(), dst.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float expected = type == DType::F16 ? f16_to_f32(src[size_t(i)]) : bf16_to_f32(src[size_t(i)]);
        if (std::isnan(expected)) {
          EXPECT_TRUE(std::isnan(dst[size_t(i)])) << dtype_name(type) << " element " << i;
        } else {
          EXPECT_EQ(f32_to_bits(dst[size_t(i)]), f32_to_bits(expected)) << dtype_name(type) << " element " << i;
        }
      }
      EXPECT_EQ(dst[size_t(n)], 12345.0f) << "wrote past the end";
    }
  }
}

TEST(ToF32, F32IsCopied) {
  std::mt19937 rng(32);
  const std::vector<float> src = random_vector(37, rng);
  std::vector<float> dst(src.size());
  to_f32(DType::F32, src.data(), dst.data(), int64_t(src.size()));
  EXPECT_EQ(dst, src);
}

TEST(ToF32, RejectsUnsupportedTypes) {
  std::vector<uint8_t> src(64, 1);
  std::vector<float> dst(32);
  try {
    to_f32(DType::IQ2_XXS, src.data(), dst.data(), 32);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported) << e.what();
  }
}

TEST(ReadBandwidth, IsPositiveAndPlausible) {
  const double bytes_per_second = measure_read_bandwidth(size_t(16) << 20, 3);
  EXPECT_TRUE(std::isfinite(bytes_per_second));
  EXPECT_GT(bytes_per_second, 1e8);   // any machine that runs this reads faster than 100 MB/s
  EXPECT_LT(bytes_per_second, 1e13);  // and slower than 10 TB/s
  EXPECT_THROW(measure_read_bandwidth(16, 1), Error);
}

}  // namespace
}  // namespace slm::cpu
