// The continuous-batching scheduler's forward on the GPU: the contract of Forward (rows of several
// sequences, each row's keys and values stored under its sequence's block ids), with the weights and
// the key and value data in GPU memory. The KvCache keeps the bookkeeping (allocation, reference
// counts, prefix hashes), so prefix sharing works as on the CPU; its own host arrays stay untouched.
#pragma once

#include <cstdint>
#include <memory>

#include "slm/engine/forward.hpp"
#include "slm/format/dtype.hpp"
#include "slm/model/model.hpp"

namespace slm {

// A GPU forward for batches of up to max_rows rows over `cache`'s blocks (the pool's size and block
// size and its element type, F32 or F16 for keys and values alike, are taken from it), each sequence
// reaching up to n_ctx positions.
// Errors: no CUDA backend or device, an architecture or weight type the GPU decoder does not run,
// head_dim above 128 (unsupported); not enough GPU memory, max_rows above the decoder's batch
// (out_of_range).
std::unique_ptr<BatchForward> make_cuda_forward(std::shared_ptr<const Model> model, int64_t max_rows, int64_t n_ctx,
                                                const KvCache& cache);

// GPU bytes make_cuda_forward allocates for `model` with a cache of kv_rows rows, estimated.
size_t cuda_forward_bytes(const Model& model, int64_t kv_rows, DType kv_type);

}  // namespace slm
