// SHA-256 (the hub's published hash of large files) and git blob SHA-1 (the id of small files),
// computed with OpenSSL's libcrypto.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace slm::hub {

enum class HashKind { sha256, sha1 };

// Incremental hash; hex_digest() finishes it (call reset() to start again).
class Hasher {
 public:
  explicit Hasher(HashKind kind);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const void* data, size_t n);
  void update(std::string_view data) { update(data.data(), data.size()); }
  std::string hex_digest();  // lowercase hex
  void reset();

 private:
  HashKind kind_;
  evp_md_ctx_st* ctx_ = nullptr;
};

std::string sha256_hex(std::string_view data);
// Hashes `n` bytes from the start of a file (all of it when n is UINT64_MAX); throws Error(io).
void hash_file_prefix(Hasher& hasher, const std::filesystem::path& path, uint64_t n = UINT64_MAX);
std::string sha256_file(const std::filesystem::path& path);
// Git's object id of a file's content: SHA-1 of "blob <size>\0" followed by the bytes.
std::string git_blob_sha1_file(const std::filesystem::path& path);

bool is_hex_digest(std::string_view text, size_t length);

}  // namespace slm::hub
