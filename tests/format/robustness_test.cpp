// Hostile-input robustness: valid GGUF and safetensors images are truncated at every offset and
// have bytes of their header regions overwritten many times (fixed seed). Each parse must either
// succeed or throw slm::Error; any other exception fails the test, and a crash or out-of-bounds read
// is caught by the address sanitizer build.
#include <gtest/gtest.h>

#include <random>

#include "format_test_util.hpp"
#include "slm/format/gguf.hpp"
#include "slm/format/safetensors.hpp"

namespace slm {
namespace {

using test::TempDir;

std::vector<uint8_t> valid_gguf() {
  TempDir dir;
  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::of_string("llama"));
  writer.set("llama.block_count", gguf::Value::of_u32(2));
  writer.set("llama.rope.freq_base", gguf::Value::of_f32(10000.0f));
  writer.set("tokenizer.ggml.tokens", gguf::Value::of_strings({"<s>", "</s>", "a", "b", "ab"}));
  writer.set("tokenizer.ggml.scores", gguf::Value::of_f32s({0.0f, -1.0f, -2.0f, -3.0f, -4.0f}));
  writer.set("nested", gguf::Value::of_array(gguf::ValueType::array,
                                             {gguf::Value::of_i32s({1, 2}), gguf::Value::of_i32s({3})}));
  writer.set("flag", gguf::Value::of_bool(true));
  writer.set("big", gguf::Value::of_u64(1ull << 40));
  const std::vector<uint8_t> a = test::random_bytes(4 * 8 * 2, 1);
  const std::vector<uint8_t> b = test::random_bytes(34 * 2, 2);
  const std::vector<uint8_t> c = test::random_bytes(2 * 16, 3);
  writer.add_tensor("token_embd.weight", DType::F32, {8, 2}, a.data());
  writer.add_tensor("blk.0.attn_q.weight", DType::Q8_0, {32, 2}, b.data());
  writer.add_tensor("output_norm.weight", DType::F16, {16}, c.data());
  writer.write(dir.file("m.gguf"));
  return test::read_file(dir.file("m.gguf"));
}

std::vector<uint8_t> valid_safetensors() {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"c":{"dtype":"F16","shape":[0],"data_offsets":[32,32]}}  )";
  test::Bytes b;
  b.u64(header.size()).raw(header);
  const std::vector<uint8_t> data = test::random_bytes(32, 4);
  b.data.insert(b.data.end(), data.begin(), data.end());
  return b.data;
}

// Touches every byte a successful parse hands out, so the sanitizer sees any pointer past the end.
uint64_t touch(const gguf::File& file) {
  uint64_t sum = 0;
  for (const auto& [key, value] : file.metadata()) sum += value.to_display(4).size() + key.size();
  for (const gguf::TensorInfo& t : file.tensors()) {
    const uint8_t* p = file.tensor_data(t);
    for (uint64_t i = 0; i < t.n_bytes(); ++i) sum += p[i];
  }
  return sum;
}

uint64_t touch(const safetensors::Archive& archive) {
  uint64_t sum = 0;
  for (const auto& t : archive.tensors()) {
    for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
  }
  for (const auto& [k, v] : archive.metadata()) sum += k.size() + v.size();
  return sum;
}

// Parses a copy of exactly `size` bytes (a fresh allocation, so reading past it is detectable).
template <typename Parse>
bool parses(const std::vector<uint8_t>& image, size_t size, Parse parse) {
  std::vector<uint8_t> copy(image.begin(), image.begin() + ptrdiff_t(size));
  try {
    parse(copy.data(), copy.size());
    return true;
  } catch (const Error&) {
    return false;
  }
}

auto parse_gguf = [](const uint8_t* p, size_t n) { return touch(gguf::File::parse(p, n)); };
auto parse_safetensors = [](const uint8_t* p, size_t n) { return touch(safetensors::Archive::parse(p, n)); };

TEST(Robustness, GgufTruncatedAtEveryOffset) {
  const std::vector<uint8_t> image = valid_gguf();
  ASSERT_TRUE(parses(image, image.size(), parse_gguf));
  const size_t data_offset = gguf::File::parse(image.data(), image.size()).data_offset();
  size_t accepted = 0;
  for (size_t size = 0; size < image.size(); ++size) {
    if (parses(image, size, parse_gguf)) ++accepted;
  }
  EXPECT_EQ(accepted, 0u) << "every truncation cuts a tensor, so none may parse";
  EXPECT_GT(data_offset, 200u);
}

TEST(Robustness, SafetensorsTruncatedAtEveryOffset) {
  const std::vector<uint8_t> image = valid_safetensors();
  ASSERT_TRUE(parses(image, image.size(), parse_safetensors));
  for (size_t size = 0; size < image.size(); ++size) {
    EXPECT_FALSE(parses(image, size, parse_safetensors)) << "truncated to " << size;
  }
}

// Overwrites 1..4 bytes of the header region with random or boundary values, many times.
template <typename Parse>
size_t mutate_many(const std::vector<uint8_t>& image, size_t header_bytes, int rounds, uint32_t seed, Parse parse) {
  std::mt19937 rng(seed);
  static constexpr uint8_t kEdges[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '"', '{', '[', ']', '}', ',', '\\', '9', '-'};
  size_t accepted = 0;
  std::vector<uint8_t> mutated;
  for (int round = 0; round < rounds; ++round) {
    mutated = image;
    const int n = 1 + int(rng() % 4);
    for (int i = 0; i < n; ++i) {
      const size_t at = rng() % header_bytes;
      mutated[at] = rng() % 2 == 0 ? uint8_t(rng()) : kEdges[rng() % sizeof kEdges];
    }
    if (parses(mutated, mutated.size(), parse)) ++accepted;
  }
  return accepted;
}

TEST(Robustness, GgufHeaderBytesOverwritten) {
  const std::vector<uint8_t> image = valid_gguf();
  const size_t header_bytes = gguf::File::parse(image.data(), image.size()).data_offset();
  const size_t accepted = mutate_many(image, header_bytes, 20000, 12345, parse_gguf);
  // Some mutations land in string contents or padding and still parse; most must be rejected.
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, 20000u);
}

TEST(Robustness, SafetensorsHeaderBytesOverwritten) {
  const std::vector<uint8_t> image = valid_safetensors();
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, image.data(), 8);
  const size_t accepted = mutate_many(image, size_t(8 + header_bytes), 20000, 54321, parse_safetensors);
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, 20000u);
}

}  // namespace
}  // namespace slm
