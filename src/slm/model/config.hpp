// ModelConfig: the immutable description of a decoder model, read once from a file's metadata
// (GGUF keys or Hugging Face config.json) and passed by const& everywhere after.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace slm::gguf {
class File;
}

namespace slm {

// How RoPE pairs dimensions of a head.
enum class RopeStyle {
  interleaved,  // pairs (2i, 2i+1): GGUF "llama" files (their Q/K rows are permuted at conversion)
  neox,         // pairs (i, i + rope_dim/2): Hugging Face weights, GGUF qwen2/qwen3
};

enum class RopeScaling { none, linear, llama3 };

// The traits of the one generic decoder forward. Each supported architecture is a setting of these.
struct ModelConfig {
  std::string arch;            // GGUF general.architecture: "llama", "qwen2", "qwen3"
  std::string hf_arch;         // Hugging Face architectures[0] when known (LlamaForCausalLM, ...)
  std::string name;            // general.name, or the folder name
  int64_t dim = 0;             // hidden size
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;        // independent of dim / n_heads (Qwen3)
  int64_t ffn_dim = 0;         // intermediate size
  int64_t vocab_size = 0;
  int64_t context_length = 0;  // trained context (max_position_embeddings)
  float norm_eps = 1e-5f;

  // Attention
  bool qkv_bias = false;       // Qwen2: biases on q, k, v projections
  bool qk_norm = false;        // Qwen3: RMSNorm over head_dim of each q and k head
  int64_t sliding_window = 0;  // Mistral: keys with (query_pos - key_pos) >= window are masked; 0 = none

  // RoPE
  RopeStyle rope_style = RopeStyle::neox;
  float rope_theta = 10000.0f;
  int64_t rope_dim = 0;        // rotated dimensions per head (== head_dim here)
  RopeScaling rope_scaling = RopeScaling::none;
  float rope_factor = 1.0f;    // linear / llama3 factor
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  int64_t rope_original_context = 0;
  // Divisors of each frequency (rope_dim/2 values), empty when none: llama3 scaling, computed from
  // config.json or read from a GGUF file's rope_freqs.weight (as llama.cpp stores it).
  std::vector<float> rope_freq_factors;

  // Output
  bool tied_output = false;    // the output head is the token embedding

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }

  // Builders: throw Error(format/unsupported) naming the key and what was expected/found.
  static ModelConfig from_gguf(const gguf::File& file);
  static ModelConfig from_hf_json(const nlohmann::json& config, const std::string& name = "");
  static ModelConfig from_hf_folder(const std::string& folder);
  void validate() const;  // consistency of shapes; throws Error(format)

  // Per-frequency inverse frequencies (rope_dim/2 values) with the configured scaling applied.
  std::vector<float> rope_inv_freq() const;
};

}  // namespace slm
