// SHA-256 and git blob ids: standard test vectors, and streaming equals one-shot.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "fake_hub.hpp"
#include "slm/hub/hash.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {
namespace {

TEST(Hash, Sha256StandardVectors) {
  // FIPS 180-2 examples.
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Hash, StreamingEqualsOneShotAndFileHash) {
  std::mt19937 rng(7);
  std::string data(3 * 1024 * 1024 + 17, '\0');
  for (auto& c : data) c = char(rng() & 0xff);
  Hasher h(HashKind::sha256);
  size_t pos = 0, step = 1;
  while (pos < data.size()) {
    const size_t n = std::min(step, data.size() - pos);
    h.update(data.data() + pos, n);
    pos += n;
    step = step * 3 + 1;
  }
  const std::string streamed = h.hex_digest();
  EXPECT_EQ(streamed, sha256_hex(data));
  const auto path = test::fresh_dir("hash") / "blob.bin";
  std::ofstream(path, std::ios::binary) << data;
  EXPECT_EQ(sha256_file(path), streamed);
  // A prefix hash plus the rest equals the whole (how a resumed download is checked).
  Hasher resumed(HashKind::sha256);
  hash_file_prefix(resumed, path, 1000);
  resumed.update(data.data() + 1000, data.size() - 1000);
  EXPECT_EQ(resumed.hex_digest(), streamed);
  Hasher too_long(HashKind::sha256);
  EXPECT_THROW(hash_file_prefix(too_long, path, data.size() + 1), Error);
}

TEST(Hash, GitBlobId) {
  // `printf 'hello\n' | git hash-object --stdin`
  const auto path = test::fresh_dir("git_blob") / "hello.txt";
  std::ofstream(path, std::ios::binary) << "hello\n";
  EXPECT_EQ(git_blob_sha1_file(path), "ce013625030ba8dba906f756967f9e9ca394464a");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "";
  EXPECT_EQ(git_blob_sha1_file(path), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
}

TEST(Hash, HexDigestCheck) {
  EXPECT_TRUE(is_hex_digest(std::string(64, 'a'), 64));
  EXPECT_FALSE(is_hex_digest(std::string(63, 'a'), 64));
  EXPECT_FALSE(is_hex_digest(std::string(63, 'a') + "g", 64));
}

}  // namespace
}  // namespace slm::hub
