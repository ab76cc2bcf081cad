// Quantizing a model: the per-tensor type recipes users know by name from llama.cpp (its file types,
// LLAMA_FTYPE_*: Q4_K_M, Q5_K_S, ...), and `slm quantize` of a GGUF file.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slm/format/dtype.hpp"

namespace slm {

// A named recipe: its default weight type and general.file_type number (llama.cpp's LLAMA_FTYPE).
struct QuantRecipe {
  std::string_view name;   // canonical spelling: "Q4_K_M", "F16", ...
  uint32_t file_type = 0;  // general.file_type
  DType default_type = DType::F16;
};

// Looks up a recipe by name, case-insensitive; "Q3_K", "Q4_K", "Q5_K" mean their _M variants as in
// llama-quantize. nullopt for an unknown name.
std::optional<QuantRecipe> quant_recipe(std::string_view name);
// "F32, F16, BF16, Q8_0, ..." for help texts and error messages.
std::string quant_recipe_names();

// A tensor as the recipe rules see it.
struct RecipeTensor {
  std::string name;            // GGUF name: "blk.3.attn_v.weight", "output.weight", ...
  std::vector<uint64_t> dims;  // GGUF order: innermost (row length) first
  DType type = DType::F32;     // its type now
};

// Model hyper-parameters the rules use (GGUF {arch}.block_count, attention.head_count[_kv]).
struct RecipeModel {
  int64_t n_layers = 0;
  int64_t n_heads = 1;
  int64_t n_kv_heads = 1;
};

struct TensorTypeChoice {
  DType type = DType::F32;
  bool quantize = false;  // false: the tensor is kept as it is (1-D tensors, norms, ...)
  bool fallback = false;  // the recipe's type does not fit the row length: a compatible type instead
};

// The type each tensor gets, following llama.cpp's llama_tensor_get_type for the supported recipes:
// - only tensors with 2+ dimensions whose names end in "weight" and are not norms are quantized;
// - output.weight (and token_embd.weight when the output is tied to it) gets Q6_K unless the
//   recipe is Q8_0, or Q8_0 when its rows are not whole blocks of the recipe's type;
// - attn_v gets more bits in Q2_K, Q3_K_M/L, Q4_K_S, Q4_K_M, Q5_K_M and IQ4_* (GQA >= 4) files,
//   ffn_down in Q2_K, Q3_K_M/L, Q4_K_S, Q4_K_M, Q5_K_M and IQ4_*, attn_output in Q2_K and Q3_K_M/L
//   (Q4_K_M/Q5_K_M: Q6_K for the first and last eighth of the layers and every third in between);
// - rows that are not whole blocks fall back: Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,
//   Q6_K -> Q8_0, IQ4_XS -> IQ4_NL, and to F16 when that does not fit either. (llama.cpp refuses
//   a tensor whose rows are not whole 32-blocks of Q4_0..Q8_0/IQ4_NL; slm writes it as F16.)
std::vector<TensorTypeChoice> choose_tensor_types(const QuantRecipe& recipe, const std::vector<RecipeTensor>& tensors,
                                                  const RecipeModel& model);

// rows x cols values of type `from` (row-major) converted to `to` (rows converted in parallel).
std::vector<uint8_t> convert_tensor_data(DType from, const void* data, int64_t rows, int64_t cols, DType to);

struct QuantizeOptions {
  std::string recipe = "Q8_0";
  bool allow_requantize = false;  // quantized input tensors may be quantized again (they lose more)
};

struct QuantizedTensor {
  std::string name;
  std::vector<int64_t> shape;  // outermost first
  DType from = DType::F32;
  DType to = DType::F32;
  size_t bytes_from = 0;
  size_t bytes_to = 0;
  bool fallback = false;
};

struct QuantizeReport {
  std::vector<QuantizedTensor> tensors;
  size_t bytes_from = 0;
  size_t bytes_to = 0;
  uint64_t n_elements = 0;
  int n_fallbacks = 0;
  uint32_t file_type = 0;
};

// Reads GGUF `in`, writes GGUF `out` with every tensor of the recipe's type and the metadata of `in`
// (general.file_type set to the recipe's number, general.quantization_version = 2).
// `on_tensor` (optional) is called as each tensor is planned.
QuantizeReport quantize_gguf(const std::string& in, const std::string& out, const QuantizeOptions& options,
                             const std::function<void(const QuantizedTensor&)>& on_tensor = {});

}  // namespace slm
