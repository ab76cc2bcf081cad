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

enum class RopeScaling { none, linear, llama3, longrope };

enum class Activation { silu, gelu_tanh };  // of the gate in gate * up

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

  // Local and global layers (Gemma 3): layer_sliding[l] is 1 for layers that use sliding_window;
  // empty: every layer uses it when sliding_window > 0. Sliding layers use rope_theta_local (0: the
  // global rope_theta) and no RoPE scaling.
  std::vector<uint8_t> layer_sliding;
  float rope_theta_local = 0.0f;

  // LongRoPE (Phi-3): per-frequency divisors for contexts up to rope_original_context (short) and
  // beyond (long), chosen by the context size; cos and sin are multiplied by rope_attention_factor.
  std::vector<float> rope_short_factors;
  std::vector<float> rope_long_factors;
  float rope_attention_factor = 1.0f;

  // Gemma-style blocks
  bool post_norms = false;          // RMSNorm on the attention output and on the MLP output, before each residual add
  Activation activation = Activation::silu;
  float embedding_scale = 0.0f;     // token embeddings multiplied by this (Gemma: sqrt(dim)); 0: none
  float attention_scale = 0.0f;     // scores multiplied by this; 0: 1/sqrt(head_dim)
  // Hugging Face Gemma files store each RMSNorm weight as w with the norm computing x * (1 + w);
  // the binding adds 1 (GGUF files already hold 1 + w, as llama.cpp converts them).
  bool norm_weight_offset = false;

  // Output
  bool tied_output = false;    // the output head is the token embedding

  int64_t q_dim() const { return n_heads * head_dim; }
  bool layer_uses_window(int64_t layer) const {
    if (sliding_window <= 0) return false;
    return layer_sliding.empty() || layer_sliding[size_t(layer)] != 0;
  }
  float attention_scale_or_default() const;
  int64_t kv_dim() const { return n_kv_heads * head_dim; }

  // Builders: throw Error(format/unsupported) naming the key and what was expected/found.
  static ModelConfig from_gguf(const gguf::File& file);
  static ModelConfig from_hf_json(const nlohmann::json& config, const std::string& name = "");
  static ModelConfig from_hf_folder(const std::string& folder);
  void validate() const;  // consistency of shapes; throws Error(format)

  // Per-frequency inverse frequencies (rope_dim/2 values) with the configured scaling applied, for
  // a global (or the only kind of) layer, or a sliding layer; n_ctx picks LongRoPE's factors.
  std::vector<float> rope_inv_freq(bool sliding_layer = false, int64_t n_ctx = 0) const;
  // The factor cos and sin are scaled by (LongRoPE's attention factor; 1 otherwise).
  float rope_cos_sin_scale() const { return rope_scaling == RopeScaling::longrope ? rope_attention_factor : 1.0f; }
};

}  // namespace slm
