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
#include <unordered_map>
#include <vector>

#include "slm/model/config.hpp"

namespace slm {

class KvCache {
 public:
  // n_blocks blocks of block_size positions for every layer of `config`. Memory is reserved, not
  // touched, until blocks are written.
  KvCache(const ModelConfig& config, int64_t n_blocks, int64_t block_size);

  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t kv_dim() const { return kv_dim_; }
  size_t bytes() const;

  // Rows of a block: [block_size][kv_dim].
  float* k_block(int64_t layer, int32_t block) { return k_[size_t(layer)].get() + block_offset(block); }
  float* v_block(int64_t layer, int32_t block) { return v_[size_t(layer)].get() + block_offset(block); }
  const float* k_block(int64_t layer, int32_t block) const { return k_[size_t(layer)].get() + block_offset(block); }
  const float* v_block(int64_t layer, int32_t block) const { return v_[size_t(layer)].get() + block_offset(block); }

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
  size_t block_offset(int32_t block) const { return size_t(block) * size_t(block_size_ * kv_dim_); }
  void check(int32_t block) const;
  void unpublish(int32_t block);

  int64_t n_blocks_;
  int64_t block_size_;
  int64_t kv_dim_;
  std::vector<std::unique_ptr<float[]>> k_, v_;  // per layer [n_blocks][block_size][kv_dim]
  std::vector<BlockInfo> info_;
  std::vector<int32_t> free_;                    // refs == 0, not published
  std::list<int32_t> cached_;                    // refs == 0, published; least recently used first
  std::unordered_map<uint64_t, int32_t> by_hash_;
  int64_t used_ = 0;
};

}  // namespace slm
