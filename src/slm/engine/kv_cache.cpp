#include "slm/engine/kv_cache.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"

namespace slm {

bool kv_type_supported(DType type) { return type == DType::F32 || type == DType::F16 || type == DType::Q8_0; }

DType parse_kv_type(const std::string& name, const char* flag) {
  std::string lower;
  for (char ch : name) lower.push_back(char(std::tolower(static_cast<unsigned char>(ch))));
  if (lower == "f32") return DType::F32;
  if (lower == "f16") return DType::F16;
  if (lower == "q8_0") return DType::Q8_0;
  fail(ErrorKind::invalid_argument, "{}: expected f32, f16 or q8_0, found '{}'", flag, name);
}

KvCache::KvCache(const ModelConfig& config, int64_t n_blocks, int64_t block_size, DType k_type, DType v_type)
    : n_blocks_(n_blocks), block_size_(block_size), kv_dim_(config.kv_dim()), k_type_(k_type), v_type_(v_type) {
  if (n_blocks <= 0 || n_blocks > INT32_MAX) {
    fail(ErrorKind::invalid_argument, "expected a KV block count in [1, {}], found {}", INT32_MAX, n_blocks);
  }
  if (block_size <= 0) fail(ErrorKind::invalid_argument, "expected a positive KV block size, found {}", block_size);
  for (const DType t : {k_type, v_type}) {
    if (!kv_type_supported(t)) {
      fail(ErrorKind::invalid_argument, "expected a KV cache type f32, f16 or q8_0, found {}", dtype_name(t));
    }
    if (t == DType::Q8_0 && (kv_dim_ % 32 != 0 || config.head_dim % 32 != 0)) {
      fail(ErrorKind::invalid_argument, "a q8_0 KV cache needs kv_dim and head_dim multiples of 32, found {} and {}",
           kv_dim_, config.head_dim);
    }
  }
  k_row_bytes_ = dtype_row_bytes(k_type, uint64_t(kv_dim_));
  v_row_bytes_ = dtype_row_bytes(v_type, uint64_t(kv_dim_));
  for (int64_t l = 0; l < config.n_layers; ++l) {
    k_.emplace_back(new uint8_t[size_t(n_blocks) * k_block_bytes()]);  // uninitialised: pages are touched when written
    v_.emplace_back(new uint8_t[size_t(n_blocks) * v_block_bytes()]);
  }
  info_.resize(size_t(n_blocks));
  free_.reserve(size_t(n_blocks));
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));  // block 0 handed out first
}

size_t KvCache::bytes() const { return k_.size() * size_t(n_blocks_) * (k_block_bytes() + v_block_bytes()); }

namespace {

void write_row(DType type, size_t row_bytes, uint8_t* dst, const float* values, int64_t n) {
  if (type == DType::F32) {
    std::memcpy(dst, values, row_bytes);
  } else {
    quantize_row(type, values, dst, n);
  }
}

}  // namespace

void KvCache::write_k(int64_t layer, int32_t block, int64_t row, const float* values) {
  write_row(k_type_, k_row_bytes_, k_block(layer, block) + size_t(row) * k_row_bytes_, values, kv_dim_);
}

void KvCache::write_v(int64_t layer, int32_t block, int64_t row, const float* values) {
  write_row(v_type_, v_row_bytes_, v_block(layer, block) + size_t(row) * v_row_bytes_, values, kv_dim_);
}

void KvCache::check(int32_t block) const {
  if (block < 0 || block >= n_blocks_) fail(ErrorKind::internal, "KV block {} outside [0, {})", block, n_blocks_);
}

int64_t KvCache::available() const { return int64_t(free_.size() + cached_.size()); }

int32_t KvCache::allocate() {
  int32_t block = -1;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!cached_.empty()) {
    block = cached_.front();  // least recently used
    cached_.pop_front();
    unpublish(block);
  } else {
    return -1;
  }
  info_[size_t(block)].refs = 1;
  ++used_;
  return block;
}

void KvCache::retain(int32_t block) {
  check(block);
  BlockInfo& b = info_[size_t(block)];
  if (b.refs == 0) {
    if (!b.published) fail(ErrorKind::internal, "KV block {} retained while free", block);
    cached_.erase(b.lru);
    ++used_;
  }
  ++b.refs;
}

void KvCache::release(int32_t block) {
  check(block);
  BlockInfo& b = info_[size_t(block)];
  if (b.refs <= 0) fail(ErrorKind::internal, "KV block {} released more often than retained", block);
  if (--b.refs > 0) return;
  --used_;
  if (b.published) {
    b.lru = cached_.insert(cached_.end(), block);  // most recently used last
  } else {
    free_.push_back(block);
  }
}

void KvCache::unpublish(int32_t block) {
  BlockInfo& b = info_[size_t(block)];
  auto it = by_hash_.find(b.hash);
  if (it != by_hash_.end() && it->second == block) by_hash_.erase(it);
  b.published = false;
  b.hash = 0;
  b.tokens.clear();
}

uint64_t KvCache::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  // FNV-1a over the parent hash and the token ids, then a final avalanche (splitmix64).
  uint64_t h = 0xcbf29ce484222325ull ^ parent;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  };
  mix(parent);
  for (int32_t t : tokens) mix(uint64_t(uint32_t(t)));
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

int32_t KvCache::lookup(uint64_t hash, std::span<const int32_t> tokens) {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  const BlockInfo& b = info_[size_t(it->second)];
  if (!std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin(), tokens.end())) return -1;  // collision
  retain(it->second);
  return it->second;
}

void KvCache::publish(int32_t block, uint64_t hash, std::span<const int32_t> tokens) {
  check(block);
  BlockInfo& b = info_[size_t(block)];
  if (b.refs == 0 || b.published || by_hash_.count(hash) != 0) return;
  if (int64_t(tokens.size()) != block_size_) {
    fail(ErrorKind::internal, "a published KV block holds {} tokens, found {}", block_size_, tokens.size());
  }
  b.published = true;
  b.hash = hash;
  b.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, block);
}

}  // namespace slm
