#include "slm/util/npy.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "slm/util/error.hpp"

namespace slm {
namespace {

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(SLM_BINARY_DIR) / "test-tmp" /
           (std::string("npy_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A .npy image as numpy writes it: magic, version, header length, dict text padded with spaces to a
// multiple of 64 bytes and closed by a newline, then the data.
std::vector<uint8_t> npy_image(const std::string& dict, const void* data, size_t n_bytes, uint8_t major = 1) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
  out.push_back(uint8_t(header.size()));
  out.push_back(uint8_t(header.size() >> 8));
  if (major != 1) {
    out.push_back(0);
    out.push_back(0);
  }
  out.insert(out.end(), header.begin(), header.end());
  const auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + n_bytes);
  return out;
}

std::string error_of(const std::function<void()>& f, ErrorKind* kind) {
  try {
    f();
  } catch (const Error& e) {
    *kind = e.kind();
    return e.what();
  }
  return "no error";
}

#define EXPECT_NPY_ERROR(statement, error_kind, needle)                         \
  do {                                                                          \
    ErrorKind kind = ErrorKind::internal;                                       \
    const std::string message = error_of([&] { statement; }, &kind);          \
    EXPECT_EQ(error_kind_name(kind), std::string(error_kind_name(error_kind))) \
        << message;                                                             \
    EXPECT_NE(message.find(needle), std::string::npos) << message;              \
  } while (0)

TEST_F(NpyTest, F32RoundTripInSeveralShapes) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const std::vector<std::vector<uint64_t>> shapes = {{}, {7}, {2, 3}, {2, 3, 4}, {1, 1, 2, 1, 3}, {0, 5}};
  for (const auto& shape : shapes) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    std::vector<float> data(n);
    for (float& x : data) x = dist(rng) + 3.5f;  // never zero
    const std::string path = file("a.npy");
    npy_write_f32(path, data.data(), shape);
    const std::vector<uint8_t> bytes = read_bytes(path);
    ASSERT_GE(bytes.size(), 64u);
    const size_t header_end = 10 + (size_t(bytes[8]) | size_t(bytes[9]) << 8);
    EXPECT_EQ(header_end % 64, 0u);
    EXPECT_EQ(bytes[header_end - 1], '\n');
    EXPECT_EQ(bytes.size(), header_end + 4 * n);

    const NpyArray array = npy_read(path);
    EXPECT_EQ(array.dtype, "<f4");
    EXPECT_EQ(array.shape, shape);
    EXPECT_EQ(array.n_elements(), n);
    EXPECT_EQ(array.f32, data);
    EXPECT_TRUE(array.i32.empty());
  }
}

TEST_F(NpyTest, I32RoundTrip) {
  const std::vector<int32_t> data = {1, -2, 2147483647, -2147483647 - 1, 42, 7};
  npy_write_i32(file("t.npy"), data.data(), {3, 2});
  const NpyArray array = npy_read(file("t.npy"));
  EXPECT_EQ(array.dtype, "<i4");
  EXPECT_EQ(array.shape, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(array.i32, data);
  EXPECT_TRUE(array.f32.empty());
}

TEST_F(NpyTest, HeaderMatchesNumpy) {
  // numpy.save(np.zeros((2, 3), np.float32)) writes exactly this header.
  const float data[6] = {1, 2, 3, 4, 5, 6};
  npy_write_f32(file("h.npy"), data, {2, 3});
  const std::vector<uint8_t> bytes = read_bytes(file("h.npy"));
  const std::string header(bytes.begin() + 10, bytes.begin() + 128);
  EXPECT_EQ(header, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(58, ' ') + "\n");
  npy_write_f32(file("one.npy"), data, {6});
  const std::vector<uint8_t> one = read_bytes(file("one.npy"));
  EXPECT_NE(std::string(one.begin(), one.end()).find("'shape': (6,), }"), std::string::npos);
}

TEST_F(NpyTest, ReadsF64AndI64Converting) {
  const double d[3] = {0.5, -1.25, 1e10};
  const auto f8 = npy_image("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d, sizeof d);
  const NpyArray a = npy_parse(f8.data(), f8.size());
  EXPECT_EQ(a.dtype, "<f8");
  EXPECT_EQ(a.f32, (std::vector<float>{0.5f, -1.25f, 1e10f}));

  const int64_t i[4] = {-3, 9, 2147483647, -2147483648LL};
  const auto i8 = npy_image("{'shape': (2, 2), 'fortran_order': False, 'descr': '<i8'}", i, sizeof i);
  const NpyArray b = npy_parse(i8.data(), i8.size());
  EXPECT_EQ(b.shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(b.i32, (std::vector<int32_t>{-3, 9, 2147483647, -2147483647 - 1}));

  const int64_t big[1] = {int64_t(1) << 40};
  const auto overflow = npy_image("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", big, sizeof big);
  EXPECT_NPY_ERROR(npy_parse(overflow.data(), overflow.size()), ErrorKind::out_of_range, "1099511627776");
}

TEST_F(NpyTest, ReadsVersion2AndPython2Longs) {
  const float f[2] = {1.5f, 2.5f};
  const auto v2 = npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", f, sizeof f, 2);
  const NpyArray a = npy_parse(v2.data(), v2.size());
  EXPECT_EQ(a.shape, (std::vector<uint64_t>{2}));
  EXPECT_EQ(a.f32, (std::vector<float>{1.5f, 2.5f}));
}

TEST_F(NpyTest, RejectsWhatItCannotRead) {
  const float f[4] = {1, 2, 3, 4};
  auto parse = [](const std::vector<uint8_t>& b) { return npy_parse(b.data(), b.size()); };
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", f, 16)),
                   ErrorKind::unsupported, "big-endian dtype '>f4'");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f, 16)),
                   ErrorKind::unsupported, "Fortran-order");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f2', 'fortran_order': False, 'shape': (8,), }", f, 16)),
                   ErrorKind::unsupported, "dtype '<f2'");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", f, 16)), ErrorKind::format,
                   "expected 5 elements of <f4 (20 bytes) after the header, found 16 bytes");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f, 16)), ErrorKind::format,
                   "found 16 bytes");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'shape': (4,), }", f, 16)), ErrorKind::format, "found only descr shape");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", f, 16)),
                   ErrorKind::format, "found 'x'");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,), }", f, 16)), ErrorKind::format,
                   "expected True or False");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", f, 16)),
                   ErrorKind::format, "expected a non-negative integer");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", f, 16)),
                   ErrorKind::format, "overflows 64 bits");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", f, 16)),
                   ErrorKind::format, "overflows 64 bits");
  EXPECT_NPY_ERROR(parse(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } x", f, 16)),
                   ErrorKind::format, "the end of the header");
  auto good = npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f, 16);
  auto bad_magic = good;
  bad_magic[1] = 'X';
  EXPECT_NPY_ERROR(parse(bad_magic), ErrorKind::format, "magic");
  auto bad_version = good;
  bad_version[6] = 9;
  EXPECT_NPY_ERROR(parse(bad_version), ErrorKind::unsupported, "found 9.0");
  auto long_header = good;
  long_header[9] = 0x7f;
  EXPECT_NPY_ERROR(parse(long_header), ErrorKind::format, "before the end");
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_THROW(npy_parse(good.data(), cut), Error) << "cut at " << cut;
  }
  EXPECT_EQ(parse(good).f32, (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(NpyTest, FileErrors) {
  EXPECT_NPY_ERROR(npy_read(file("missing.npy")), ErrorKind::io, "missing.npy");
  const float f[1] = {1};
  EXPECT_NPY_ERROR(npy_write_f32(file("no/such/dir.npy"), f, {1}), ErrorKind::io, "dir.npy");
  std::ofstream(file("empty.npy")).close();
  EXPECT_NPY_ERROR(npy_read(file("empty.npy")), ErrorKind::format, "magic");
}

}  // namespace
}  // namespace slm
