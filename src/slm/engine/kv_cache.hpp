// The paged KV cache: a pool of blocks of block_size positions, per layer, that sequences own
// through block tables. Blocks are reference counted; a full block can be published under the hash
// of the tokens it holds and of every token before it (a hash chain), so that a later sequence with
// the same prefix reuses it instead of computing it again. Released published blocks stay cached
// (least recently used first out) until their space is needed.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "slm/format/dtype.hpp"
#include "slm/model/config.hpp"

namespace slm {

// The element types a cache may hold keys and values in (llama.cpp's --cache-type-k/-v): F32, F16,
// or Q8_0 (blocks of 32 values with an f16 scale, GGUF's layout; kv_dim and head_dim must be
// multiples of 32).
bool kv_type_supported(DType type);
// "f32", "f16", "q8_0" (any case) -> the type; Error(invalid_argument) naming the accepted ones.
DType parse_kv_type(const std::string& name, const char* flag);

class KvCache {
 public:
  // n_blocks blocks of block_size positions for every layer of `config`, keys of k_type and values
  // of v_type. Memory is reserved, not touched, until blocks are written.
  KvCache(const ModelConfig& config, int64_t n_blocks, int64_t block_size, DType k_type = DType::F32,
          DType v_type = DType::F32);

  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t kv_dim() const { return kv_dim_; }
  DType k_type() const { return k_type_; }
  DType v_type() const { return v_type_; }
  size_t k_row_bytes() const { return k_row_bytes_; }  // one position's keys (kv_dim values)
  size_t v_row_bytes() const { return v_row_bytes_; }
  size_t bytes() const;

  // Rows of a block: block_size rows of k_row_bytes() (v_row_bytes()) bytes.
  uint8_t* k_block(int64_t layer, int32_t block) { return k_[size_t(layer)].get() + size_t(block) * k_block_bytes(); }
  uint8_t* v_block(int64_t layer, int32_t block) { return v_[size_t(layer)].get() + size_t(block) * v_block_bytes(); }
  const uint8_t* k_block(int64_t layer, int32_t block) const {
    return k_[size_t(layer)].get() + size_t(block) * k_block_bytes();
  }
  const uint8_t* v_block(int64_t layer, int32_t block) const {
    return v_[size_t(layer)].get() + size_t(block) * v_block_bytes();
  }
  // Stores kv_dim floats as position `row` of a block (converted to the cache's types).
  void write_k(int64_t layer, int32_t block, int64_t row, const float* values);
  void write_v(int64_t layer, int32_t block, int64_t row, const float* values);

  // Allocation. allocate() takes a never-published free block first, else evicts the least recently
  // used cached one; -1 when every block is in use. Each block starts with one reference.
  int32_t allocate();
  void retain(int32_t block);
  void release(int32_t block);
  int64_t available() const;  // blocks allocate() can still hand out (free + cached)
  int64_t used() const { return used_; }  // blocks with a reference

  // Prefix cache. chain_hash(parent, tokens) is the hash of a full block following the block whose
  // hash is `parent` (0 for the first block).
  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);
  // The cached block with this hash and these tokens, retained (one more reference); -1 if none.
  int32_t lookup(uint64_t hash, std::span<const int32_t> tokens);
  // Offers a full, computed block to the cache; ignored when an equal block is already there.
  void publish(int32_t block, uint64_t hash, std::span<const int32_t> tokens);

 private:
  struct BlockInfo {
    int32_t refs = 0;
    bool published = false;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;                 // published blocks: the tokens they hold
    std::list<int32_t>::iterator lru;            // position in cached_ while refs == 0 and published
  };
  size_t k_block_bytes() const { return size_t(block_size_) * k_row_bytes_; }
  size_t v_block_bytes() const { return size_t(block_size_) * v_row_bytes_; }
  void check(int32_t block) const;
  void unpublish(int32_t block);

  int64_t n_blocks_;
  int64_t block_size_;
  int64_t kv_dim_;
  DType k_type_, v_type_;
  size_t k_row_bytes_, v_row_bytes_;
  std::vector<std::unique_ptr<uint8_t[]>> k_, v_;  // per layer [n_blocks][block_size] rows
  std::vector<BlockInfo> info_;
  std::vector<int32_t> free_;                    // refs == 0, not published
  std::list<int32_t> cached_;                    // refs == 0, published; least recently used first
  std::unordered_map<uint64_t, int32_t> by_hash_;
  int64_t used_ = 0;
};

}  // namespace slm
