// Helpers shared by the format tests: byte-image builders, temporary folders, error assertions.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "slm/util/error.hpp"

namespace slm::test {

// Little-endian byte image built field by field.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T value) {
    const size_t at = data.size();
    data.resize(at + sizeof(T));
    std::memcpy(data.data() + at, &value, sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(const std::string& s) {  // GGUF string: u64 length then bytes
    put<uint64_t>(s.size());
    raw(s);
    return *this;
  }
  Bytes& raw(const std::string& s) {
    data.insert(data.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& zeros(size_t n) {
    data.resize(data.size() + n, 0);
    return *this;
  }
  Bytes& pad_to(size_t alignment) {
    while (data.size() % alignment != 0) data.push_back(0);
    return *this;
  }
  size_t size() const { return data.size(); }
  std::vector<uint8_t> data;
};

// A fresh folder under the build tree, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    path_ = std::filesystem::path(SLM_BINARY_DIR) / "test-tmp" / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Random bytes, never all zero.
inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = uint8_t(rng() % 255 + 1);
  return out;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> out(n);
  for (float& x : out) {
    do {
      x = dist(rng);
    } while (x == 0.0f);
  }
  return out;
}

}  // namespace slm::test

// Runs `statement`, requires an slm::Error of `kind` whose message contains `needle`.
#define EXPECT_SLM_ERROR(statement, error_kind, needle)                                                  \
  do {                                                                                                   \
    try {                                                                                                \
      statement;                                                                                         \
      ADD_FAILURE() << "expected slm::Error(" << ::slm::error_kind_name(error_kind) << ") containing '" \
                    << (needle) << "', got no error";                                                    \
    } catch (const ::slm::Error& e) {                                                                    \
      EXPECT_EQ(::slm::error_kind_name(e.kind()), std::string(::slm::error_kind_name(error_kind)))      \
          << "message: " << e.what();                                                                    \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)                                   \
          << "message '" << e.what() << "' does not mention '" << (needle) << "'";                       \
    }                                                                                                    \
  } while (0)
