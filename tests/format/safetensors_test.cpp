#include "slm/format/safetensors.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "format_test_util.hpp"
#include "slm/util/fp16.hpp"

namespace slm::safetensors {
namespace {

using test::Bytes;
using test::TempDir;

Bytes image(const std::string& header, const std::vector<uint8_t>& data) {
  Bytes b;
  b.u64(header.size()).raw(header);
  b.data.insert(b.data.end(), data.begin(), data.end());
  return b;
}

Archive parse(const Bytes& b, const Limits& limits = {}) { return Archive::parse(b.data.data(), b.size(), limits); }

// One tensor "w" with the given fields and `data_bytes` of data.
Bytes one_tensor(const std::string& dtype, const std::string& shape, const std::string& offsets, size_t data_bytes) {
  return image(R"({"w":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}",
               test::random_bytes(data_bytes, 3));
}

// A file with f32 [2, 3], f16 [4] and bf16 [3, 1] tensors of known values, plus metadata.
struct Sample {
  std::vector<float> a;  // f32 [2, 3]
  std::vector<float> b;  // f16 [4]
  std::vector<float> c;  // bf16 [3, 1]
  Bytes bytes;
};

Sample sample(uint32_t seed, const std::string& prefix = "") {
  Sample s;
  s.a = test::random_floats(6, seed);
  s.b = test::random_floats(4, seed + 1);
  s.c = test::random_floats(3, seed + 2);
  std::vector<uint8_t> data(24 + 8 + 6);
  std::memcpy(data.data(), s.a.data(), 24);
  for (size_t i = 0; i < 4; ++i) {
    const uint16_t h = f32_to_f16(s.b[i]);
    std::memcpy(data.data() + 24 + 2 * i, &h, 2);
    s.b[i] = f16_to_f32(h);
  }
  for (size_t i = 0; i < 3; ++i) {
    const uint16_t h = f32_to_bf16(s.c[i]);
    std::memcpy(data.data() + 32 + 2 * i, &h, 2);
    s.c[i] = bf16_to_f32(h);
  }
  // Keys out of file order, padding spaces after the JSON as writers emit them.
  const std::string header = "{\"__metadata__\":{\"format\":\"pt\"},\"" + prefix + "c\":{\"dtype\":\"BF16\",\"shape\":[3,1],\"data_offsets\":[32,38]},\"" +
                             prefix + "a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},\"" + prefix +
                             "b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}      ";
  s.bytes = image(header, data);
  return s;
}

std::vector<float> values(const TensorInfo& t) {
  std::vector<float> out;
  const size_t element = t.type == DType::F32 ? 4 : 2;
  for (size_t i = 0; i < t.n_bytes / element; ++i) {
    if (t.type == DType::F32) {
      float f;
      std::memcpy(&f, t.data + 4 * i, 4);
      out.push_back(f);
    } else {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      out.push_back(t.type == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h));
    }
  }
  return out;
}

void expect_sample(const Archive& archive, const Sample& s, const std::string& prefix = "") {
  const TensorInfo* a = archive.find(prefix + "a");
  const TensorInfo* b = archive.find(prefix + "b");
  const TensorInfo* c = archive.find(prefix + "c");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->type, DType::F32);
  EXPECT_EQ(b->type, DType::F16);
  EXPECT_EQ(c->type, DType::BF16);
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(b->shape, (std::vector<uint64_t>{4}));
  EXPECT_EQ(c->shape, (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(values(*a), s.a);
  EXPECT_EQ(values(*b), s.b);
  EXPECT_EQ(values(*c), s.c);
}

TEST(Safetensors, ParsesAnImageInFileOrder) {
  const Sample s = sample(1);
  const Archive archive = parse(s.bytes);
  ASSERT_EQ(archive.tensors().size(), 3u);
  EXPECT_EQ(archive.tensors()[0].name, "a");
  EXPECT_EQ(archive.tensors()[1].name, "b");
  EXPECT_EQ(archive.tensors()[2].name, "c");
  expect_sample(archive, s);
  EXPECT_EQ(archive.metadata().at("format"), "pt");
  EXPECT_EQ(archive.find("d"), nullptr);
  EXPECT_EQ(archive.n_files(), 0u);
}

TEST(Safetensors, OpensASingleFile) {
  TempDir dir;
  const Sample s = sample(2);
  test::write_file(dir.file("weights.safetensors"), s.bytes.data);
  const Archive archive = Archive::open(dir.file("weights.safetensors"));
  expect_sample(archive, s);
  EXPECT_EQ(archive.n_files(), 1u);
}

TEST(Safetensors, OpensAFolderWithModelSafetensors) {
  TempDir dir;
  const Sample s = sample(3);
  test::write_file(dir.file("model.safetensors"), s.bytes.data);
  test::write_file(dir.file("other.safetensors"), sample(9).bytes.data);  // ignored: model.safetensors wins
  const Archive archive = Archive::open(dir.path().string());
  expect_sample(archive, s);
  EXPECT_EQ(archive.tensors().size(), 3u);
  EXPECT_EQ(archive.n_files(), 1u);
}

TEST(Safetensors, OpensAShardedFolder) {
  TempDir dir;
  const Sample s1 = sample(4, "layer.0.");
  const Sample s2 = sample(5, "layer.1.");
  test::write_file(dir.file("model-00001-of-00002.safetensors"), s1.bytes.data);
  test::write_file(dir.file("model-00002-of-00002.safetensors"), s2.bytes.data);
  std::string index = R"({"metadata":{"total_size":76},"weight_map":{)";
  for (const char* name : {"a", "b", "c"}) {
    index += fmt::format(R"("layer.0.{}":"model-00001-of-00002.safetensors",)", name);
    index += fmt::format(R"("layer.1.{}":"model-00002-of-00002.safetensors",)", name);
  }
  index.back() = '}';
  index += "}";
  std::ofstream(dir.file("model.safetensors.index.json")) << index;
  const Archive archive = Archive::open(dir.path().string());
  EXPECT_EQ(archive.n_files(), 2u);  // each shard mapped once
  ASSERT_EQ(archive.tensors().size(), 6u);
  expect_sample(archive, s1, "layer.0.");
  expect_sample(archive, s2, "layer.1.");
  EXPECT_EQ(archive.metadata().at("format"), "pt");
}

TEST(Safetensors, IndexErrors) {
  TempDir dir;
  test::write_file(dir.file("shard.safetensors"), sample(6).bytes.data);
  const std::string index_path = dir.file("model.safetensors.index.json");
  auto write_index = [&](const std::string& text) { std::ofstream(index_path) << text; };

  write_index(R"({"weight_map":{"a":"shard.safetensors","zz":"shard.safetensors"}})");
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::format, "places tensor 'zz' in this shard");
  write_index(R"({"weight_map":{"a":"missing.safetensors"}})");
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::not_found, "names shard 'missing.safetensors'");
  write_index(R"({"weight_map":{"a":"../shard.safetensors"}})");
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::format, "expected a shard file name in the same folder");
  write_index(R"({"weight_map":{"a":7}})");
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::format, "tensor 'a'");
  write_index(R"({"metadata":{}})");
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::format, "'weight_map' object");
  write_index(R"({"weight_map":{"a":"shard.safetensors",})");
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::format, "valid JSON");

  // Only the tensors the index names are exposed.
  write_index(R"({"weight_map":{"b":"shard.safetensors"}})");
  const Archive archive = Archive::open(dir.path().string());
  ASSERT_EQ(archive.tensors().size(), 1u);
  EXPECT_EQ(archive.tensors()[0].name, "b");
}

TEST(Safetensors, OpensAFolderOfSeveralFiles) {
  TempDir dir;
  const Sample s1 = sample(7, "x.");
  const Sample s2 = sample(8, "y.");
  test::write_file(dir.file("part-b.safetensors"), s2.bytes.data);
  test::write_file(dir.file("part-a.safetensors"), s1.bytes.data);
  std::ofstream(dir.file("README.md")) << "not a tensor file";
  const Archive archive = Archive::open(dir.path().string());
  EXPECT_EQ(archive.n_files(), 2u);
  ASSERT_EQ(archive.tensors().size(), 6u);
  EXPECT_EQ(archive.tensors()[0].name, "x.a");  // files in name order
  expect_sample(archive, s1, "x.");
  expect_sample(archive, s2, "y.");

  test::write_file(dir.file("part-c.safetensors"), sample(10, "x.").bytes.data);
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::format, "tensor 'x.a' appears in more than one file");
}

TEST(Safetensors, MissingPathsAreNotFound) {
  TempDir dir;
  EXPECT_SLM_ERROR(Archive::open(dir.path().string()), ErrorKind::not_found, "holds no .safetensors files");
  EXPECT_SLM_ERROR(Archive::open(dir.file("nope.safetensors")), ErrorKind::not_found, "does not exist");
}

TEST(Safetensors, UnsupportedDtypesNameTheTensor) {
  EXPECT_SLM_ERROR(parse(one_tensor("U8", "[4]", "[0,4]", 4)), ErrorKind::unsupported, "tensor 'w' has dtype U8");
  EXPECT_SLM_ERROR(parse(one_tensor("F8_E4M3", "[4]", "[0,4]", 4)), ErrorKind::unsupported, "tensor 'w' has dtype F8_E4M3");
  EXPECT_SLM_ERROR(parse(one_tensor("U64", "[1]", "[0,8]", 8)), ErrorKind::unsupported, "U64");
  EXPECT_SLM_ERROR(parse(one_tensor("I64", "[2]", "[0,8]", 8)), ErrorKind::format, "expected 16 bytes for I64");
  EXPECT_SLM_ERROR(parse(one_tensor("Q9", "[1]", "[0,8]", 8)), ErrorKind::format, "expected a safetensors dtype, found 'Q9'");
}

// A checkpoint with an integer buffer (BERT's embeddings.position_ids, I64) beside its weights:
// both load, the buffer with its own type and bytes, the weight unchanged.
TEST(Safetensors, IntegerBuffersLoadBesideTheWeights) {
  const std::vector<float> w = test::random_floats(6, 21);
  std::vector<int64_t> ids = {0, 1, 2, 3, 4};
  std::vector<int32_t> small = {-7, 9};
  std::vector<uint8_t> data(5 * 8 + 2 * 4 + 24);
  std::memcpy(data.data(), ids.data(), 40);
  std::memcpy(data.data() + 40, small.data(), 8);
  std::memcpy(data.data() + 48, w.data(), 24);
  const std::string header =
      R"({"embeddings.position_ids":{"dtype":"I64","shape":[1,5],"data_offsets":[0,40]},)"
      R"("counts":{"dtype":"I32","shape":[2],"data_offsets":[40,48]},)"
      R"("embeddings.word_embeddings.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[48,72]}})";
  TempDir dir;
  test::write_file(dir.file("model.safetensors"), image(header, data).data);
  const Archive archive = Archive::open(dir.path().string());
  ASSERT_EQ(archive.tensors().size(), 3u);
  const TensorInfo* pos = archive.find("embeddings.position_ids");
  ASSERT_NE(pos, nullptr);
  EXPECT_EQ(pos->type, DType::I64);
  EXPECT_EQ(pos->shape, (std::vector<uint64_t>{1, 5}));
  ASSERT_EQ(pos->n_bytes, 40u);
  std::vector<int64_t> got(5);
  std::memcpy(got.data(), pos->data, 40);
  EXPECT_EQ(got, ids);
  const TensorInfo* counts = archive.find("counts");
  ASSERT_NE(counts, nullptr);
  EXPECT_EQ(counts->type, DType::I32);
  int32_t c1 = 0;
  std::memcpy(&c1, counts->data + 4, 4);
  EXPECT_EQ(c1, 9);
  const TensorInfo* weight = archive.find("embeddings.word_embeddings.weight");
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(weight->type, DType::F32);
  std::vector<float> wf(6);
  std::memcpy(wf.data(), weight->data, 24);
  EXPECT_EQ(wf, w);
  const Archive i8 = parse(one_tensor("I8", "[4]", "[0,4]", 4));
  EXPECT_EQ(i8.tensors().at(0).type, DType::I8);
}

TEST(Safetensors, HeaderLengthChecks) {
  Bytes tiny;
  tiny.u32(5);
  EXPECT_SLM_ERROR(parse(tiny), ErrorKind::format, "8-byte header length, found a file of 4 bytes");
  Bytes past_end;
  past_end.u64(100).raw("{}");
  EXPECT_SLM_ERROR(parse(past_end), ErrorKind::format, "header of 100 bytes after the length, found only 2");
  Bytes huge;
  huge.u64(uint64_t(1) << 62).raw("{}");
  EXPECT_SLM_ERROR(parse(huge), ErrorKind::out_of_range, "header of at most");
  Limits small;
  small.max_header_bytes = 16;
  EXPECT_SLM_ERROR(parse(sample(1).bytes, small), ErrorKind::out_of_range, "at most 16 bytes");
  EXPECT_SLM_ERROR(parse(image("", {})), ErrorKind::format, "an empty header");
  EXPECT_SLM_ERROR(parse(image("[1]", {})), ErrorKind::format, "start with '{' at byte offset 8");
  EXPECT_EQ(parse(image("{}", {})).tensors().size(), 0u);
}

TEST(Safetensors, JsonChecks) {
  EXPECT_SLM_ERROR(parse(image(R"({"w":{"dtype":"F32",)", {})), ErrorKind::format, "valid JSON");
  EXPECT_SLM_ERROR(parse(image("{}x", {})), ErrorKind::format, "valid JSON");
  EXPECT_SLM_ERROR(parse(image("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", {})), ErrorKind::format,
                   "nested at most");
  EXPECT_SLM_ERROR(parse(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               test::random_bytes(8, 1))),
                   ErrorKind::format, "found 'w' twice");
  EXPECT_SLM_ERROR(parse(image(R"({"w":[1]})", {})), ErrorKind::format, "tensor 'w': expected an object");
  EXPECT_SLM_ERROR(parse(image(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", {})), ErrorKind::format, "string 'dtype'");
  EXPECT_SLM_ERROR(parse(image(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", {})), ErrorKind::format, "array 'shape'");
  EXPECT_SLM_ERROR(parse(image(R"({"w":{"dtype":"F32","shape":[1]}})", {})), ErrorKind::format, "'data_offsets'");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[1]", "[0,4,8]", 8)), ErrorKind::format, "two integers");
  EXPECT_SLM_ERROR(parse(image(R"({"__metadata__":{"k":1}})", {})), ErrorKind::format, "__metadata__ key 'k': expected a string");
  EXPECT_SLM_ERROR(parse(image(R"({"__metadata__":[]})", {})), ErrorKind::format, "__metadata__ to be an object");
}

TEST(Safetensors, OffsetAndShapeChecks) {
  EXPECT_NO_THROW(parse(one_tensor("F32", "[2,2]", "[0,16]", 16)));
  EXPECT_NO_THROW(parse(one_tensor("F32", "[]", "[0,4]", 4)));     // scalar
  EXPECT_NO_THROW(parse(one_tensor("F16", "[0,7]", "[0,0]", 0)));  // empty
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[2,2]", "[0,16]", 12)), ErrorKind::format,
                   "tensor 'w': expected data_offsets [0, 16] to be ordered and inside the data area of 12 bytes");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[1]", "[8,4]", 12)), ErrorKind::format, "ordered");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[2,2]", "[0,12]", 16)), ErrorKind::format,
                   "expected 16 bytes for F32 of shape [2,2], found data_offsets [0, 12] (12 bytes)");
  EXPECT_SLM_ERROR(parse(one_tensor("BF16", "[3]", "[0,8]", 8)), ErrorKind::format, "expected 6 bytes");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[-1]", "[0,4]", 4)), ErrorKind::format, "shape to hold non-negative integers, found -1");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[1.5]", "[0,4]", 4)), ErrorKind::format, "found 1.5");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[1]", "[-4,0]", 4)), ErrorKind::format, "data_offsets to hold non-negative integers");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[4294967296,4294967296]", "[0,4]", 4)), ErrorKind::format, "overflows 64 bits");
  EXPECT_SLM_ERROR(parse(one_tensor("F32", "[1]", "[0,18446744073709551616]", 4)), ErrorKind::format, "non-negative integers");
  EXPECT_SLM_ERROR(parse(image(R"({"u":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               test::random_bytes(12, 2))),
                   ErrorKind::format, "tensors 'u' and 'v' overlap");
  Limits few;
  few.max_tensors = 1;
  EXPECT_SLM_ERROR(parse(sample(1).bytes, few), ErrorKind::out_of_range, "at most 1 tensors");
}

}  // namespace
}  // namespace slm::safetensors
