// `slm convert`: a Hugging Face folder to a GGUF file with llama.cpp's tensor names and metadata
// keys, so llama.cpp loads what slm writes.
#pragma once

#include <string>

#include "slm/format/dtype.hpp"

namespace slm {

struct ConvertOptions {
  DType outtype = DType::F16;  // for 2-D weights: F32, F16 or BF16; norms and biases stay F32
  // A quantization recipe by name (quantize.hpp: "Q8_0", "Q4_K_M", "F16", ...); when set it
  // replaces outtype and chooses each tensor's type as `slm quantize` does.
  std::string recipe;
};

struct ConvertReport {
  size_t n_tensors = 0;
  size_t bytes = 0;  // tensor data written
  bool has_tokenizer = false;
};

ConvertReport convert_hf_to_gguf(const std::string& folder, const std::string& out_path, const ConvertOptions& options);

}  // namespace slm
