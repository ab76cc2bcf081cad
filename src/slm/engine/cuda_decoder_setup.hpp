// How a loaded model becomes the GPU decoder's configuration and weights (built with the CUDA
// backend only). CudaSession and the decoder's own tests share this mapping.
#pragma once

#include <cstdint>

#include "slm/backend/cuda/decoder.hpp"
#include "slm/model/model.hpp"

namespace slm {

// Shapes, RoPE frequencies (LongRoPE factors chosen for max_positions), window and norm epsilon;
// the caller sets the KV type and the execution options.
cuda::DecoderConfig cuda_decoder_config(const ModelConfig& config, int64_t max_positions);
// Host views of the model's mapped weights (nothing is copied).
cuda::DecoderWeights cuda_decoder_weights(const Model& model);

}  // namespace slm
