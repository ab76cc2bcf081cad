#include "slm/hub/hash.hpp"

#include <openssl/evp.h>

#include <fstream>
#include <vector>

#include "slm/util/error.hpp"

namespace slm::hub {

namespace {
const EVP_MD* digest_of(HashKind kind) { return kind == HashKind::sha256 ? EVP_sha256() : EVP_sha1(); }
}  // namespace

Hasher::Hasher(HashKind kind) : kind_(kind), ctx_(EVP_MD_CTX_new()) {
  if (!ctx_) fail(ErrorKind::internal, "expected a digest context, found an allocation failure");
  reset();
}

Hasher::~Hasher() { EVP_MD_CTX_free(ctx_); }

void Hasher::reset() {
  if (EVP_DigestInit_ex(ctx_, digest_of(kind_), nullptr) != 1) {
    fail(ErrorKind::internal, "expected the digest to initialize, found an OpenSSL error");
  }
}

void Hasher::update(const void* data, size_t n) {
  if (n && EVP_DigestUpdate(ctx_, data, n) != 1) fail(ErrorKind::internal, "digest update failed");
}

std::string Hasher::hex_digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, md, &len) != 1) fail(ErrorKind::internal, "digest final failed");
  static const char* digits = "0123456789abcdef";
  std::string hex(size_t(len) * 2, '0');
  for (unsigned int i = 0; i < len; ++i) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  return hex;
}

std::string sha256_hex(std::string_view data) {
  Hasher h(HashKind::sha256);
  h.update(data);
  return h.hex_digest();
}

void hash_file_prefix(Hasher& hasher, const std::filesystem::path& path, uint64_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::io, "cannot open '{}' to hash it", path.string());
  std::vector<char> buf(1 << 20);
  uint64_t left = n;
  while (left > 0) {
    const size_t want = size_t(std::min<uint64_t>(left, buf.size()));
    in.read(buf.data(), std::streamsize(want));
    const size_t got = size_t(in.gcount());
    hasher.update(buf.data(), got);
    left -= got;
    if (got < want) break;
  }
  if (n != UINT64_MAX && left != 0) {
    fail(ErrorKind::io, "expected {} bytes in '{}' to hash, found {}", n, path.string(), n - left);
  }
}

std::string sha256_file(const std::filesystem::path& path) {
  Hasher h(HashKind::sha256);
  hash_file_prefix(h, path);
  return h.hex_digest();
}

std::string git_blob_sha1_file(const std::filesystem::path& path) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(ErrorKind::io, "cannot read the size of '{}': {}", path.string(), ec.message());
  Hasher h(HashKind::sha1);
  const std::string header = "blob " + std::to_string(size);
  h.update(header.data(), header.size() + 1);  // with the terminating NUL
  hash_file_prefix(h, path, size);
  return h.hex_digest();
}

bool is_hex_digest(std::string_view text, size_t length) {
  if (text.size() != length) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

}  // namespace slm::hub
