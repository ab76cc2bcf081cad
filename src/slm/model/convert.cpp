#include "slm/model/convert.hpp"

#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <vector>

#include "slm/format/gguf.hpp"
#include "slm/format/safetensors.hpp"
#include "slm/model/config.hpp"
#include "slm/model/quantize.hpp"
#include "slm/format/quant.hpp"
#include "slm/model/tensor_names.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {


// llama.cpp's "llama" architecture applies RoPE to interleaved pairs, Hugging Face to halves: the
// rows of each head of Q and K are reordered so that row (2i + j) takes row (j * head_dim/2 + i).
size_t permuted_source_row(size_t row, size_t head_dim) {
  const size_t head = row / head_dim, r = row % head_dim;
  const size_t i = r / 2, j = r % 2;
  return head * head_dim + j * (head_dim / 2) + i;
}

QuantRecipe recipe_of(const ConvertOptions& options) {
  std::string name = options.recipe;
  if (name.empty()) {
    if (options.outtype != DType::F32 && options.outtype != DType::F16 && options.outtype != DType::BF16) {
      fail(ErrorKind::unsupported, "convert: output type {} is not supported (f32, f16, bf16, or a recipe: {})",
           dtype_name(options.outtype), quant_recipe_names());
    }
    name = std::string(dtype_name(options.outtype));
  }
  const auto recipe = quant_recipe(name);
  if (!recipe) fail(ErrorKind::invalid_argument, "convert: unknown output type '{}': expected one of {}", name, quant_recipe_names());
  return *recipe;
}

}  // namespace

ConvertReport convert_hf_to_gguf(const std::string& folder, const std::string& out_path, const ConvertOptions& options) {
  const QuantRecipe recipe = recipe_of(options);
  const uint32_t file_type = recipe.file_type;
  const ModelConfig c = ModelConfig::from_hf_folder(folder);
  const auto archive = safetensors::Archive::open(folder);
  const std::string a = c.arch + ".";

  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::of_string(c.arch));
  writer.set("general.name", gguf::Value::of_string(c.name));
  writer.set("general.file_type", gguf::Value::of_u32(file_type));
  writer.set("general.quantization_version", gguf::Value::of_u32(2));
  writer.set(a + "context_length", gguf::Value::of_u32(uint32_t(c.context_length)));
  writer.set(a + "embedding_length", gguf::Value::of_u32(uint32_t(c.dim)));
  writer.set(a + "block_count", gguf::Value::of_u32(uint32_t(c.n_layers)));
  writer.set(a + "feed_forward_length", gguf::Value::of_u32(uint32_t(c.ffn_dim)));
  writer.set(a + "attention.head_count", gguf::Value::of_u32(uint32_t(c.n_heads)));
  writer.set(a + "attention.head_count_kv", gguf::Value::of_u32(uint32_t(c.n_kv_heads)));
  writer.set(a + "attention.layer_norm_rms_epsilon", gguf::Value::of_f32(c.norm_eps));
  writer.set(a + "attention.key_length", gguf::Value::of_u32(uint32_t(c.head_dim)));
  writer.set(a + "attention.value_length", gguf::Value::of_u32(uint32_t(c.head_dim)));
  writer.set(a + "rope.freq_base", gguf::Value::of_f32(c.rope_theta));
  writer.set(a + "rope.dimension_count", gguf::Value::of_u32(uint32_t(c.rope_dim)));
  writer.set(a + "vocab_size", gguf::Value::of_u32(uint32_t(c.vocab_size)));
  if (c.sliding_window > 0) writer.set(a + "attention.sliding_window", gguf::Value::of_u32(uint32_t(c.sliding_window)));
  if (c.rope_scaling == RopeScaling::linear) {
    writer.set(a + "rope.scaling.type", gguf::Value::of_string("linear"));
    writer.set(a + "rope.scaling.factor", gguf::Value::of_f32(c.rope_factor));
  }
  if (c.arch == "gemma3") {
    // llama.cpp's keys; attention.scale only where query_pre_attn_scalar differs from head_dim.
    writer.set(a + "rope.freq_base_swa", gguf::Value::of_f32(c.rope_theta_local > 0 ? c.rope_theta_local : c.rope_theta));
    int64_t period = 0;  // the layer kinds as a period: sliding layers, then one global layer
    for (int64_t l = 0; l < c.n_layers && !period; ++l) {
      if (!c.layer_uses_window(l)) period = l + 1;
    }
    if (period == 0) period = c.n_layers + 1;
    for (int64_t l = 0; l < c.n_layers; ++l) {
      if (c.layer_uses_window(l) != (l % period < period - 1)) {
        fail(ErrorKind::unsupported, "convert: gemma3 layer kinds do not repeat with a period GGUF can express");
      }
    }
    writer.set(a + "attention.sliding_window_pattern", gguf::Value::of_u32(uint32_t(period)));
    if (std::abs(c.attention_scale_or_default() - 1.0f / std::sqrt(float(c.head_dim))) > 1e-7f) {
      writer.set(a + "attention.scale", gguf::Value::of_f32(c.attention_scale_or_default()));
    }
  }
  if (c.rope_scaling == RopeScaling::longrope) {
    writer.set(a + "rope.scaling.original_context_length", gguf::Value::of_u32(uint32_t(c.rope_original_context)));
    writer.set(a + "rope.scaling.attn_factor", gguf::Value::of_f32(c.rope_attention_factor));
  }

  ConvertReport report;
  std::deque<std::vector<uint8_t>> buffers;  // converted data, alive until the file is written
  auto add_f32_vector = [&](const char* name, const std::vector<float>& values) {
    auto& buf = buffers.emplace_back(values.size() * 4);
    std::memcpy(buf.data(), values.data(), buf.size());
    writer.add_tensor(name, DType::F32, {uint64_t(values.size())}, buf.data());
    ++report.n_tensors;
    report.bytes += buf.size();
  };
  if (!c.rope_freq_factors.empty()) add_f32_vector("rope_freqs.weight", c.rope_freq_factors);
  if (c.rope_scaling == RopeScaling::longrope) {
    add_f32_vector("rope_factors_long.weight", c.rope_long_factors);
    add_f32_vector("rope_factors_short.weight", c.rope_short_factors);
  }

  // The tensors to write, with their GGUF names; then each one's type under the recipe (plain
  // recipes: F32/F16/BF16 for weights, F32 for norms and biases).
  struct Planned {
    const safetensors::TensorInfo* tensor;
    std::string name;
  };
  std::vector<Planned> planned;
  std::vector<RecipeTensor> recipe_tensors;
  for (const auto& t : archive.tensors()) {
    auto name = hf_to_gguf_name(t.name, c.arch);
    if (!name) {
      if (t.name.find("rotary_emb.inv_freq") != std::string::npos) continue;
      // The vision tower and projector of a multimodal checkpoint: only the text model converts.
      if (t.name.find("vision_tower") != std::string::npos || t.name.find("multi_modal_projector") != std::string::npos) continue;
      fail(ErrorKind::unsupported, "convert: tensor '{}' has no GGUF counterpart slm knows", t.name);
    }
    if (*name == "output.weight" && c.tied_output) continue;  // tied: llama.cpp uses token_embd
    if (t.shape.empty() || t.shape.size() > 2) {
      fail(ErrorKind::unsupported, "convert: tensor '{}' has {} dimensions, expected 1 or 2", t.name, t.shape.size());
    }
    planned.push_back({&t, *name});
    std::vector<uint64_t> dims(t.shape.rbegin(), t.shape.rend());
    recipe_tensors.push_back({*name, dims, DType::F32});
  }
  const auto choices = choose_tensor_types(recipe, recipe_tensors, RecipeModel{c.n_layers, c.n_heads, c.n_kv_heads});

  const bool permute_qk = c.arch == "llama";
  for (size_t index = 0; index < planned.size(); ++index) {
    const auto& t = *planned[index].tensor;
    const std::string* name = &planned[index].name;
    const bool matrix = t.shape.size() == 2;
    const DType out_type = choices[index].type;
    const bool is_q = name->ends_with("attn_q.weight") || name->ends_with("attn_q.bias");
    const bool is_k = name->ends_with("attn_k.weight") || name->ends_with("attn_k.bias");
    const bool permute = permute_qk && (is_q || is_k);
    // Gemma's RMSNorm weights become 1 + w, as llama.cpp stores them.
    const bool shift_norm = c.norm_weight_offset && name->ends_with("norm.weight");
    const uint64_t rows = t.shape[0];
    const uint64_t cols = matrix ? t.shape[1] : 1;
    std::vector<uint64_t> dims = matrix ? std::vector<uint64_t>{cols, rows} : std::vector<uint64_t>{rows};
    if (shift_norm) {
      std::vector<float> values(size_t(rows * cols));
      dequantize_row(t.type, t.data, values.data(), int64_t(rows * cols));
      for (float& v : values) v += 1.0f;
      std::vector<uint8_t> buf = convert_tensor_data(DType::F32, values.data(), int64_t(rows), int64_t(cols), out_type);
      writer.add_tensor(*name, out_type, dims, buffers.emplace_back(std::move(buf)).data());
    } else if (out_type == t.type && !permute) {
      writer.add_tensor(*name, out_type, dims, t.data);  // straight from the mapping
    } else {
      // Permutation moves whole rows in the source type; convert_tensor_data then changes the type.
      const void* source = t.data;
      std::vector<uint8_t> permuted;
      if (permute) {
        const size_t row_bytes = dtype_row_bytes(t.type, cols);
        permuted.resize(size_t(rows) * row_bytes);
        for (uint64_t r = 0; r < rows; ++r) {
          std::memcpy(permuted.data() + r * row_bytes, t.data + permuted_source_row(size_t(r), size_t(c.head_dim)) * row_bytes,
                      row_bytes);
        }
        source = permuted.data();
      }
      std::vector<uint8_t> buf = convert_tensor_data(t.type, source, int64_t(rows), int64_t(cols), out_type);
      writer.add_tensor(*name, out_type, dims, buffers.emplace_back(std::move(buf)).data());
    }
    ++report.n_tensors;
    report.bytes += size_t(rows) * dtype_row_bytes(out_type, cols);
  }

  const auto tokenizer_json = std::filesystem::path(folder) / "tokenizer.json";
  if (std::filesystem::exists(tokenizer_json)) {
    TokenizerData data = Tokenizer::data_from_tokenizer_json(tokenizer_json.string());
    if (int64_t(data.tokens.size()) > c.vocab_size) {
      fail(ErrorKind::format, "convert: tokenizer.json has {} tokens but the model's vocabulary is {}", data.tokens.size(),
           c.vocab_size);
    }
    // llama.cpp wants one token per embedding row: rows past the tokenizer's tokens (Qwen pads its
    // embedding to a multiple of 128) become unused "[PAD<id>]" tokens, as its own converter writes.
    for (int64_t id = int64_t(data.tokens.size()); id < c.vocab_size; ++id) {
      data.tokens.push_back("[PAD" + std::to_string(id) + "]");
      data.types.push_back(TokenType::unused);
    }
    Tokenizer::write_gguf(data, writer);
    report.has_tokenizer = true;
  }
  writer.write(out_path);
  return report;
}

}  // namespace slm
