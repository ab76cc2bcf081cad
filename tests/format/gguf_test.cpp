#include "slm/format/gguf.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "format_test_util.hpp"
#include "slm/util/timing.hpp"

namespace slm::gguf {
namespace {

using test::Bytes;
using test::TempDir;

// ---- hand-built images -------------------------------------------------------------------------

Bytes header(uint32_t version, uint64_t n_tensors, uint64_t n_metadata) {
  Bytes b;
  b.raw("GGUF").u32(version).u64(n_tensors).u64(n_metadata);
  return b;
}

void kv_u32(Bytes& b, const std::string& key, uint32_t v) { b.str(key).u32(uint32_t(ValueType::u32)).u32(v); }
void kv_string(Bytes& b, const std::string& key, const std::string& v) {
  b.str(key).u32(uint32_t(ValueType::string)).str(v);
}
void tensor_info(Bytes& b, const std::string& name, const std::vector<uint64_t>& dims, DType type, uint64_t offset) {
  b.str(name).u32(uint32_t(dims.size()));
  for (uint64_t d : dims) b.u64(d);
  b.u32(uint32_t(type)).u64(offset);
}

// Two metadata entries and two tensors (f32 [4, 2] at 0, q8_0 [32] at 32), data padded to 32.
Bytes valid_image(uint32_t version) {
  Bytes b = header(version, 2, 2);
  kv_string(b, "general.architecture", "llama");
  kv_u32(b, "llama.block_count", 2);
  tensor_info(b, "a", {4, 2}, DType::F32, 0);
  tensor_info(b, "b", {32}, DType::Q8_0, 32);
  b.pad_to(32);
  const std::vector<uint8_t> data = test::random_bytes(32 + 34, 7);
  b.data.insert(b.data.end(), data.begin(), data.end());
  return b;
}

File parse(const Bytes& b, const Limits& limits = {}) { return File::parse(b.data.data(), b.size(), limits); }

// ---- round trips -------------------------------------------------------------------------------

Value nested_arrays() {
  std::vector<Value> rows;
  rows.push_back(Value::of_i32s({1, -2, 3}));
  rows.push_back(Value::of_i32s({}));
  rows.push_back(Value::of_i32s({2147483647}));
  std::vector<Value> outer;
  outer.push_back(Value::of_array(ValueType::array, rows));
  outer.push_back(Value::of_array(ValueType::array, {Value::of_strings({"x", "yz"})}));
  return Value::of_array(ValueType::array, outer);
}

std::vector<std::pair<std::string, Value>> every_value_type() {
  return {
      {"t.u8", Value::of_u8(250)},
      {"t.i8", Value::of_i8(-120)},
      {"t.u16", Value::of_u16(65000)},
      {"t.i16", Value::of_i16(-32000)},
      {"t.u32", Value::of_u32(4000000000u)},
      {"t.i32", Value::of_i32(-2000000000)},
      {"t.f32", Value::of_f32(0.1f)},
      {"t.bool", Value::of_bool(true)},
      {"t.bool_false", Value::of_bool(false)},
      {"t.string", Value::of_string("h\xc3\xa9llo\n\"world\"")},
      {"t.empty_string", Value::of_string("")},
      {"t.u64", Value::of_u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", Value::of_i64(std::numeric_limits<int64_t>::min())},
      {"t.f64", Value::of_f64(-1.0e300)},
      {"t.strings", Value::of_strings({"<s>", "</s>", "", "\xe4\xb8\xad"})},
      {"t.f32s", Value::of_f32s({1.5f, -0.25f, 3e-8f})},
      {"t.u8s", Value::of_array(ValueType::u8, {Value::of_u8(1), Value::of_u8(255)})},
      {"t.bools", Value::of_array(ValueType::boolean, {Value::of_bool(true), Value::of_bool(false)})},
      {"t.f64s", Value::of_array(ValueType::f64, {Value::of_f64(2.5)})},
      {"t.empty", Value::of_array(ValueType::u64, {})},
      {"t.nested", nested_arrays()},
  };
}

struct SourceTensor {
  std::string name;
  DType type;
  std::vector<uint64_t> dims;
  std::vector<uint8_t> bytes;
};

std::vector<SourceTensor> several_tensors() {
  std::vector<SourceTensor> out = {
      {"token_embd.weight", DType::F32, {8, 3}, {}},
      {"blk.0.attn_norm.weight", DType::F16, {17}, {}},
      {"blk.0.ffn_up.weight", DType::BF16, {5, 2}, {}},
      {"blk.0.attn_q.weight", DType::Q8_0, {64, 2}, {}},
      {"blk.0.ffn_down.weight", DType::Q4_K, {256, 1}, {}},
      {"blk.0.ffn_gate.weight", DType::Q6_K, {512, 1, 2}, {}},
      {"four_dims", DType::F32, {2, 3, 4, 5}, {}},
      {"scalar", DType::F32, {}, {}},
      {"positions", DType::I32, {3}, {}},
      {"empty", DType::F32, {0, 4}, {}},
  };
  uint32_t seed = 100;
  for (SourceTensor& t : out) {
    TensorInfo info{t.name, t.dims, t.type, 0};
    t.bytes = test::random_bytes(size_t(info.n_bytes()), seed++);
  }
  return out;
}

class GgufRoundTrip : public ::testing::TestWithParam<uint64_t> {};

TEST_P(GgufRoundTrip, EveryValueTypeAndSeveralTensors) {
  const uint64_t alignment = GetParam();
  TempDir dir;
  const std::string path = dir.file("model.gguf");
  Writer writer(alignment);
  const auto metadata = every_value_type();
  for (const auto& [key, value] : metadata) writer.set(key, value);
  const auto tensors = several_tensors();
  for (const SourceTensor& t : tensors) writer.add_tensor(t.name, t.type, t.dims, t.bytes.data());
  writer.write(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const File file = File::open(path);
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), alignment);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.file_size(), std::filesystem::file_size(path));
  EXPECT_EQ(file.data_offset() % alignment, 0u);

  // Metadata in order; the writer adds general.alignment when it is not the default.
  const size_t extra = alignment == 32 ? 0 : 1;
  ASSERT_EQ(file.metadata().size(), metadata.size() + extra);
  for (size_t i = 0; i < metadata.size(); ++i) {
    EXPECT_EQ(file.metadata()[i].first, metadata[i].first);
    EXPECT_TRUE(file.metadata()[i].second == metadata[i].second)
        << metadata[i].first << ": wrote " << metadata[i].second.to_display() << ", read "
        << file.metadata()[i].second.to_display();
  }
  if (extra == 1) EXPECT_EQ(file.get_int("general.alignment"), int64_t(alignment));

  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const SourceTensor& t : tensors) {
    SCOPED_TRACE(t.name);
    const TensorInfo* info = file.find_tensor(t.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->type, t.type);
    EXPECT_EQ(info->dims, t.dims);
    EXPECT_EQ(info->offset % alignment, 0u);
    ASSERT_EQ(info->n_bytes(), t.bytes.size());
    if (!t.bytes.empty()) EXPECT_EQ(std::memcmp(file.tensor_data(*info), t.bytes.data(), t.bytes.size()), 0);
  }
  EXPECT_EQ(file.find_tensor("missing"), nullptr);
  EXPECT_EQ(file.find("missing"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufRoundTrip, ::testing::Values(1, 8, 32, 64, 4096));

TEST(Gguf, TypedLookups) {
  TempDir dir;
  Writer writer;
  writer.set("general.name", Value::of_string("tiny"));
  writer.set("llama.context_length", Value::of_u32(4096));
  writer.set("llama.rope.freq_base", Value::of_f32(500000.0f));
  writer.set("tokenizer.ggml.add_bos_token", Value::of_bool(true));
  writer.set("general.name", Value::of_string("tiny-2"));  // replaces
  writer.write(dir.file("m.gguf"));
  const File file = File::open(dir.file("m.gguf"));
  ASSERT_EQ(file.metadata().size(), 4u);
  EXPECT_EQ(file.get_string("general.name"), "tiny-2");
  EXPECT_EQ(file.get_int("llama.context_length"), 4096);
  EXPECT_EQ(file.get_float("llama.context_length"), 4096.0);
  EXPECT_EQ(file.get_float("llama.rope.freq_base"), 500000.0);
  EXPECT_EQ(file.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(file.get_string("absent"), std::nullopt);
  EXPECT_EQ(file.get_int("absent"), std::nullopt);
  EXPECT_SLM_ERROR(file.get_int("general.name"), ErrorKind::format, "general.name");
  EXPECT_SLM_ERROR(file.get_string("llama.context_length"), ErrorKind::format, "found a u32");
  EXPECT_SLM_ERROR(file.get_bool("llama.rope.freq_base"), ErrorKind::format, "f32");
  EXPECT_SLM_ERROR(file.get_float("tokenizer.ggml.add_bos_token"), ErrorKind::format, "bool");
}

TEST(GgufValue, CheckedAccessors) {
  EXPECT_EQ(Value::of_u8(200).as_int(), 200);
  EXPECT_EQ(Value::of_i16(-5).as_int(), -5);
  EXPECT_EQ(Value::of_u64(uint64_t(INT64_MAX)).as_int(), INT64_MAX);
  EXPECT_SLM_ERROR(Value::of_u64(uint64_t(INT64_MAX) + 1).as_int(), ErrorKind::out_of_range, "9223372036854775808");
  EXPECT_SLM_ERROR(Value::of_string("x").as_int(), ErrorKind::format, "string");
  EXPECT_SLM_ERROR(Value::of_u32(3).as_string(), ErrorKind::format, "u32");
  EXPECT_SLM_ERROR(Value::of_u32(3).as_bool(), ErrorKind::format, "u32");
  EXPECT_SLM_ERROR(Value::of_f32(1).as_array(), ErrorKind::format, "f32");
  EXPECT_DOUBLE_EQ(Value::of_i32(-7).as_float(), -7.0);
  EXPECT_FLOAT_EQ(float(Value::of_f32(0.3f).as_float()), 0.3f);
  EXPECT_TRUE(Value::of_f64(1.0).is_float());
  EXPECT_FALSE(Value::of_f64(1.0).is_integer());
  EXPECT_TRUE(Value::of_i8(1).is_integer());

  EXPECT_EQ(Value::of_strings({"a", "b"}).as_strings(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Value::of_i32s({4, -4}).as_ints(), (std::vector<int64_t>{4, -4}));
  EXPECT_EQ(Value::of_i32s({4, -4}).as_floats(), (std::vector<float>{4.0f, -4.0f}));
  EXPECT_EQ(Value::of_f32s({0.5f}).as_floats(), (std::vector<float>{0.5f}));
  EXPECT_SLM_ERROR(Value::of_f32s({0.5f}).as_ints(), ErrorKind::format, "array of f32");
  EXPECT_SLM_ERROR(Value::of_i32s({1}).as_strings(), ErrorKind::format, "array of i32");
  EXPECT_SLM_ERROR(Value::of_strings({"a"}).as_floats(), ErrorKind::format, "array of string");
  EXPECT_SLM_ERROR(Value::of_u32(1).as_strings(), ErrorKind::format, "u32");
}

TEST(GgufValue, Display) {
  EXPECT_EQ(Value::of_u32(42).to_display(), "42");
  EXPECT_EQ(Value::of_i64(-42).to_display(), "-42");
  EXPECT_EQ(Value::of_bool(false).to_display(), "false");
  EXPECT_EQ(Value::of_f32(0.1f).to_display(), "0.1");
  EXPECT_EQ(Value::of_string("a\"b\n").to_display(), "\"a\\\"b\\n\"");
  EXPECT_EQ(Value::of_string(std::string(100, 'x')).to_display(), "\"" + std::string(60, 'x') + "...\"");
  EXPECT_EQ(Value::of_i32s({1, 2, 3}).to_display(), "[1, 2, 3] (i32 3)");
  EXPECT_EQ(Value::of_i32s({1, 2, 3, 4, 5}).to_display(2), "[1, 2, ... 3 more] (i32 5)");
  EXPECT_EQ(Value::of_strings({"a"}).to_display(0), "[... 1 more] (string 1)");
  EXPECT_EQ(nested_arrays().to_display(1), "[[[1, ... 2 more] (i32 3), ... 2 more] (array 3), ... 1 more] (array 2)");
}

// ---- version 2 and version errors --------------------------------------------------------------

TEST(Gguf, ReadsVersion2) {
  const Bytes b = valid_image(2);
  const File file = parse(b);
  EXPECT_EQ(file.version(), 2u);
  EXPECT_EQ(file.get_string("general.architecture"), "llama");
  EXPECT_EQ(file.get_int("llama.block_count"), 2);
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.tensors()[0].dims, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(file.tensors()[1].type, DType::Q8_0);
  EXPECT_EQ(file.tensor_data(file.tensors()[1]), b.data.data() + file.data_offset() + 32);
  EXPECT_EQ(file.data_offset() % 32, 0u);
  EXPECT_EQ(file.path(), "");
}

TEST(Gguf, RejectsOtherVersions) {
  Bytes v1 = valid_image(1);
  EXPECT_SLM_ERROR(parse(v1), ErrorKind::unsupported, "version 1");
  EXPECT_SLM_ERROR(parse(valid_image(4)), ErrorKind::unsupported, "found 4");
  EXPECT_SLM_ERROR(parse(valid_image(0x03000000)), ErrorKind::unsupported, "big-endian");
}

TEST(Gguf, RejectsBadMagic) {
  Bytes b = valid_image(3);
  b.data[0] = 'F';
  EXPECT_SLM_ERROR(parse(b), ErrorKind::format, "magic 'GGUF'");
  EXPECT_SLM_ERROR(File::parse(b.data.data(), 0), ErrorKind::format, "empty file");
  EXPECT_SLM_ERROR(File::parse(valid_image(3).data.data(), 3), ErrorKind::format, "magic");
}

TEST(Gguf, OpenMissingFileIsAnIoError) {
  EXPECT_SLM_ERROR(File::open("/nonexistent/model.gguf"), ErrorKind::io, "/nonexistent/model.gguf");
}

// ---- malformed headers and metadata ------------------------------------------------------------

TEST(Gguf, TruncatedHeaderNamesTheOffset) {
  const Bytes b = valid_image(3);
  EXPECT_SLM_ERROR(File::parse(b.data.data(), 10), ErrorKind::format, "the tensor count at byte offset 8");
  EXPECT_SLM_ERROR(File::parse(b.data.data(), 20), ErrorKind::format, "metadata count at byte offset 16");
}

TEST(Gguf, CountsAreCheckedAgainstLimitsAndRemainingBytes) {
  Bytes many_kv = header(3, 0, 1000);
  EXPECT_SLM_ERROR(parse(many_kv), ErrorKind::format, "1000 metadata entries need at least 13000 bytes");
  Bytes huge_kv = header(3, 0, uint64_t(1) << 40);
  EXPECT_SLM_ERROR(parse(huge_kv), ErrorKind::out_of_range, "at most 65536 metadata entries");
  Bytes huge_tensors = header(3, uint64_t(1) << 40, 0);
  EXPECT_SLM_ERROR(parse(huge_tensors), ErrorKind::out_of_range, "at most 1048576 tensors");
  Bytes many_tensors = header(3, 5, 0);
  EXPECT_SLM_ERROR(parse(many_tensors), ErrorKind::format, "5 tensor infos need at least 120 bytes");

  Limits small;
  small.max_tensors = 1;
  EXPECT_SLM_ERROR(parse(valid_image(3), small), ErrorKind::out_of_range, "at most 1 tensors, found a count of 2");
}

TEST(Gguf, StringsAreBoundsChecked) {
  Bytes past_end = header(3, 0, 1);
  past_end.u64(1000).raw("general.name");
  EXPECT_SLM_ERROR(parse(past_end), ErrorKind::format, "expected 1000 bytes of a metadata key at byte offset 32");

  Bytes over_limit = header(3, 0, 1);
  over_limit.str("k").u32(uint32_t(ValueType::string)).u64(uint64_t(1) << 62).zeros(16);
  EXPECT_SLM_ERROR(parse(over_limit), ErrorKind::out_of_range, "a string of at most");

  Limits small;
  small.max_string_bytes = 4;
  EXPECT_SLM_ERROR(parse(valid_image(3), small), ErrorKind::out_of_range, "a string of at most 4 bytes, found a length of 20");
}

TEST(Gguf, ArraysAreBoundsChecked) {
  Bytes too_many = header(3, 0, 1);
  too_many.str("tokens").u32(uint32_t(ValueType::array)).u32(uint32_t(ValueType::string)).u64(1000).str("a");
  EXPECT_SLM_ERROR(parse(too_many), ErrorKind::format, "key 'tokens': an array of 1000 string items needs at least 8000 bytes");

  Bytes over_limit = header(3, 0, 1);
  over_limit.str("scores").u32(uint32_t(ValueType::array)).u32(uint32_t(ValueType::f32)).u64(uint64_t(1) << 60);
  EXPECT_SLM_ERROR(parse(over_limit), ErrorKind::out_of_range, "key 'scores': expected an array of at most 16777216 items");

  Bytes bad_element = header(3, 0, 1);
  bad_element.str("xs").u32(uint32_t(ValueType::array)).u32(77).u64(1).u32(0);
  EXPECT_SLM_ERROR(parse(bad_element), ErrorKind::format, "key 'xs': expected a value type 0..12, found 77");

  // Arrays nested deeper than the limit: array of array of ... of u8.
  Bytes deep = header(3, 0, 1);
  deep.str("deep").u32(uint32_t(ValueType::array));
  for (int i = 0; i < 20; ++i) deep.u32(uint32_t(ValueType::array)).u64(1);
  deep.u32(uint32_t(ValueType::u8)).u64(1).u8(1);
  EXPECT_SLM_ERROR(parse(deep), ErrorKind::out_of_range, "key 'deep': expected arrays nested at most 8 deep");
}

TEST(Gguf, ValueTypesAreChecked) {
  Bytes bad_type = header(3, 0, 1);
  bad_type.str("general.name").u32(13).u32(0);
  EXPECT_SLM_ERROR(parse(bad_type), ErrorKind::format, "key 'general.name': expected a value type 0..12, found 13 at byte offset 44");

  Bytes bad_bool = header(3, 0, 1);
  bad_bool.str("flag").u32(uint32_t(ValueType::boolean)).u8(2);
  EXPECT_SLM_ERROR(parse(bad_bool), ErrorKind::format, "key 'flag': expected a bool byte 0 or 1, found 2");

  Bytes short_value = header(3, 0, 1);
  short_value.str("n").u32(uint32_t(ValueType::u64)).u32(5);
  EXPECT_SLM_ERROR(parse(short_value), ErrorKind::format, "expected 8 bytes of a u64 value");
}

TEST(Gguf, RejectsDuplicateKeys) {
  Bytes b = header(3, 0, 2);
  kv_u32(b, "llama.block_count", 1);
  kv_u32(b, "llama.block_count", 2);
  EXPECT_SLM_ERROR(parse(b), ErrorKind::format, "found 'llama.block_count' twice");
}

TEST(Gguf, AlignmentMustBeAPowerOfTwo) {
  for (uint32_t bad : {0u, 3u, 48u}) {
    Bytes b = header(3, 0, 1);
    kv_u32(b, "general.alignment", bad);
    EXPECT_SLM_ERROR(parse(b), ErrorKind::format, fmt::format("non-zero power of two, found {}", bad));
  }
  Bytes as_string = header(3, 0, 1);
  kv_string(as_string, "general.alignment", "32");
  EXPECT_SLM_ERROR(parse(as_string), ErrorKind::format, "general.alignment': expected an unsigned integer, found a string");

  Bytes ok = header(3, 1, 1);
  kv_u32(ok, "general.alignment", 64);
  tensor_info(ok, "t", {16}, DType::F32, 0);
  ok.pad_to(64).zeros(64);
  const File file = parse(ok);
  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.data_offset() % 64, 0u);
}

// ---- malformed tensor infos --------------------------------------------------------------------

Bytes one_tensor(const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset, size_t data_bytes) {
  Bytes b = header(3, 1, 0);
  b.str("blk.0.w").u32(uint32_t(dims.size()));
  for (uint64_t d : dims) b.u64(d);
  b.u32(type).u64(offset);
  b.pad_to(32).zeros(data_bytes);
  return b;
}

TEST(Gguf, TensorChecks) {
  EXPECT_NO_THROW(parse(one_tensor({8, 2}, 0, 0, 64)));
  EXPECT_SLM_ERROR(parse(one_tensor({1, 1, 1, 1, 1}, 0, 0, 64)), ErrorKind::out_of_range,
                   "tensor 'blk.0.w': expected at most 4 dimensions, found 5");
  EXPECT_SLM_ERROR(parse(one_tensor({32}, 31, 0, 64)), ErrorKind::unsupported,
                   "tensor 'blk.0.w': expected a known tensor type, found type number 31");
  EXPECT_SLM_ERROR(parse(one_tensor({33}, uint32_t(DType::Q8_0), 0, 64)), ErrorKind::format,
                   "expected a row length that is a multiple of 32 (the block size of q8_0), found 33");
  EXPECT_SLM_ERROR(parse(one_tensor({8}, 0, 16, 64)), ErrorKind::format, "expected a data offset aligned to 32 bytes, found 16");
  EXPECT_SLM_ERROR(parse(one_tensor({8, 3}, 0, 0, 64)), ErrorKind::format,
                   "tensor 'blk.0.w': expected its 96 bytes at data offset 0 to lie inside the data section of 64 bytes");
  EXPECT_SLM_ERROR(parse(one_tensor({8}, 0, 64, 64)), ErrorKind::format, "at data offset 64 to lie inside");
  EXPECT_SLM_ERROR(parse(one_tensor({8}, 0, uint64_t(1) << 63, 64)), ErrorKind::format, "lie inside");
  EXPECT_SLM_ERROR(parse(one_tensor({uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0, 64)), ErrorKind::format,
                   "overflow the element count");
  EXPECT_SLM_ERROR(parse(one_tensor({uint64_t(1) << 63}, 0, 0, 64)), ErrorKind::format, "overflow");
  EXPECT_SLM_ERROR(parse(one_tensor({uint64_t(1) << 61, 2}, 0, 0, 64)), ErrorKind::format, "overflow");
}

TEST(Gguf, RejectsDuplicateTensorNames) {
  Bytes b = header(3, 2, 0);
  tensor_info(b, "output.weight", {8}, DType::F32, 0);
  tensor_info(b, "output.weight", {8}, DType::F32, 32);
  b.pad_to(32).zeros(64);
  EXPECT_SLM_ERROR(parse(b), ErrorKind::format, "found 'output.weight' twice");
}

TEST(Gguf, TensorsWithoutDataSectionAreAnError) {
  Bytes b = header(3, 1, 0);
  tensor_info(b, "t", {0}, DType::F32, 0);  // 52 bytes: data would start at 64, past the end
  EXPECT_SLM_ERROR(parse(b), ErrorKind::format, "expected the tensor data section at byte offset 64");
  Bytes no_tensors = header(3, 0, 1);
  kv_u32(no_tensors, "k", 1);
  EXPECT_EQ(parse(no_tensors).tensors().size(), 0u);  // a metadata-only file need not be padded
}

// ---- writer checks -----------------------------------------------------------------------------

TEST(GgufWriter, RejectsBadInput) {
  EXPECT_SLM_ERROR(Writer(0), ErrorKind::invalid_argument, "power of two");
  EXPECT_SLM_ERROR(Writer(24), ErrorKind::invalid_argument, "found 24");
  Writer w;
  const float data[64] = {1.0f};
  w.add_tensor("t", DType::F32, {4}, data);
  EXPECT_SLM_ERROR(w.add_tensor("t", DType::F32, {4}, data), ErrorKind::invalid_argument, "'t' is added twice");
  EXPECT_SLM_ERROR(w.add_tensor("q", DType::Q4_0, {48}, data), ErrorKind::invalid_argument, "multiple of 32");
  EXPECT_SLM_ERROR(w.add_tensor("five", DType::F32, {1, 1, 1, 1, 1}, data), ErrorKind::invalid_argument, "at most 4 dimensions");
  EXPECT_SLM_ERROR(w.add_tensor("none", DType::F32, {4}, nullptr), ErrorKind::invalid_argument, "no data");
  EXPECT_SLM_ERROR(w.add_tensor(std::string(64, 'n'), DType::F32, {4}, data), ErrorKind::invalid_argument,
                   "at most 63 bytes, found 64");
  w.add_tensor(std::string(63, 'n'), DType::F32, {4}, data);
  EXPECT_SLM_ERROR(w.set("k", Value::of_array(ValueType::i32, {Value::of_i32(1), Value::of_u8(1)})), ErrorKind::invalid_argument,
                   "expected array items of type i32, found an item of type u8");
  Value too_big = Value::of_u8(1);
  too_big.data = uint64_t(300);
  EXPECT_SLM_ERROR(w.set("k", too_big), ErrorKind::invalid_argument, "300 does not fit a u8");
  Value negative = Value::of_u32(1);
  negative.data = int64_t(-1);
  EXPECT_SLM_ERROR(w.set("k", negative), ErrorKind::invalid_argument, "-1 does not fit a u32");
  EXPECT_SLM_ERROR(w.set("general.alignment", Value::of_u32(64)), ErrorKind::invalid_argument, "general.alignment");
  w.set("general.alignment", Value::of_u32(32));
}

TEST(GgufWriter, UnwritablePathIsAnIoErrorAndLeavesNoFile) {
  TempDir dir;
  Writer w;
  w.set("k", Value::of_u32(1));
  EXPECT_SLM_ERROR(w.write(dir.file("missing-folder/m.gguf")), ErrorKind::io, "m.gguf.tmp");
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing-folder")));
}

TEST(GgufWriter, ReplacesAnExistingFileAtomically) {
  TempDir dir;
  const std::string path = dir.file("m.gguf");
  Writer first;
  first.set("v", Value::of_u32(1));
  first.write(path);
  Writer second;
  second.set("v", Value::of_u32(2));
  second.write(path);
  EXPECT_EQ(File::open(path).get_int("v"), 2);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// ---- performance -------------------------------------------------------------------------------

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return false;
}

TEST(GgufPerformance, VocabularyOf152kTokensParsesQuickly) {
  TempDir dir;
  const std::string path = dir.file("vocab.gguf");
  constexpr size_t kVocab = 152064;
  std::vector<std::string> tokens(kVocab);
  std::vector<float> scores(kVocab);
  std::vector<int32_t> types(kVocab);
  std::vector<std::string> merges(kVocab - 1000);
  for (size_t i = 0; i < kVocab; ++i) {
    tokens[i] = fmt::format("\xc4\xa0tok{}", i);
    scores[i] = -float(i) - 0.5f;
    types[i] = int32_t(1 + i % 3);
  }
  for (size_t i = 0; i < merges.size(); ++i) merges[i] = fmt::format("t{} o{}", i, i % 97);
  Writer writer;
  writer.set("tokenizer.ggml.model", Value::of_string("gpt2"));
  writer.set("tokenizer.ggml.tokens", Value::of_strings(tokens));
  writer.set("tokenizer.ggml.scores", Value::of_f32s(scores));
  writer.set("tokenizer.ggml.token_type", Value::of_i32s(types));
  writer.set("tokenizer.ggml.merges", Value::of_strings(merges));
  writer.write(path);

  double best = 1e9;
  for (int run = 0; run < 3; ++run) {
    Stopwatch watch;
    const File file = File::open(path);
    best = std::min(best, watch.seconds());
    ASSERT_EQ(file.find("tokenizer.ggml.tokens")->as_array().items.size(), kVocab);
    EXPECT_EQ(file.find("tokenizer.ggml.tokens")->as_array().items[151999].as_string(), "\xc4\xa0tok151999");
    EXPECT_EQ(file.find("tokenizer.ggml.scores")->as_array().items[7].as_float(), -7.5);
  }
  std::printf("metadata of a %zu-token vocabulary parsed in %.1f ms\n", kVocab, best * 1e3);
  EXPECT_LT(best, sanitized() ? 1.0 : 0.1) << "seconds to parse the metadata of a 152k vocabulary";
}

TEST(GgufPerformance, LargeFileOpensWithoutReadingTensorData) {
  TempDir dir;
  const std::string path = dir.file("big.gguf");
  constexpr uint64_t kElements = uint64_t(1) << 28;  // 1 GiB of f32
  Bytes b = header(3, 1, 1);
  kv_string(b, "general.architecture", "llama");
  tensor_info(b, "token_embd.weight", {kElements / 4096, 4096}, DType::F32, 0);
  b.pad_to(32);
  const size_t data_offset = b.size();
  test::write_file(path, b.data);
  std::filesystem::resize_file(path, data_offset + kElements * 4);  // sparse: no data is written

  Stopwatch watch;
  const File file = File::open(path);
  const double seconds = watch.seconds();
  EXPECT_LT(seconds, sanitized() ? 1.0 : 0.1);
  EXPECT_EQ(file.file_size(), data_offset + kElements * 4);
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors()[0].n_bytes(), kElements * 4);
  EXPECT_EQ(file.tensors()[0].n_elements(), kElements);
  EXPECT_EQ(file.tensor_data(file.tensors()[0])[kElements * 4 - 1], 0);
}

}  // namespace
}  // namespace slm::gguf
