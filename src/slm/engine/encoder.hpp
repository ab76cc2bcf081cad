// BERT-family encoders for embeddings (the shapes of all-MiniLM-L6-v2 and bge-small-en-v1.5, and
// nomic-embed-text's nomic_bert: see EncoderConfig::rotary):
// absolute position and token-type embeddings, post-LayerNorm blocks, GELU MLP, bidirectional
// attention. Loaded from a Hugging Face folder (config.json + safetensors, sentence-transformers
// files beside them) or a GGUF file of architecture "bert" with llama.cpp's tensor names.
//
//   x = LayerNorm(tok_embd[id] + position_embd[p] + token_types[0])
//   per layer: a = softmax(q k^T / sqrt(head_dim)) v  (q, k, v, a with biases; every row sees every row)
//              x = LayerNorm(x + a Wo^T + bo)
//              x = LayerNorm(x + act(x Wup^T + bup) Wdown^T + bdown)
//   output: x, one row per token (transformers' last_hidden_state)
//
// Also the pooling settings of embedding models (sentence-transformers' modules.json and
// 1_Pooling/config.json, or GGUF's {arch}.pooling_type), shared by the decoder embedding path.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "slm/engine/scheduler.hpp"
#include "slm/tokenizer/wordpiece.hpp"

namespace slm {

enum class EncoderActivation { gelu_erf, gelu_tanh, relu };

struct EncoderConfig {
  std::string arch = "bert";
  std::string name;
  int64_t vocab_size = 0;
  int64_t dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t ffn_dim = 0;
  int64_t max_positions = 0;  // rows of position_embd: the longest input
  int64_t type_vocab_size = 0;
  float norm_eps = 1e-12f;
  EncoderActivation activation = EncoderActivation::gelu_erf;
  // nomic_bert (nomic-embed-text): rotary positions instead of a position table, fused Wqkv, a
  // SwiGLU MLP (fc2(fc11(x) * silu(fc12(x)))), no biases in the projections.
  bool rotary = false;
  float rope_theta = 10000.0f;
  int64_t rope_dim = 0;        // rotated dimensions per head (GPT-NeoX halves)
  bool gated_mlp = false;
  int64_t head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
};

// How token vectors become one embedding.
struct PoolingConfig {
  Pooling mode = Pooling::mean;
  bool normalize = true;
  int64_t max_seq_length = 0;  // sentence_bert_config.json's max_seq_length; 0: none given
  bool from_model = false;     // read from the model's files (else defaults)
  std::string source;          // which file said so, for messages
};

// The pooling a model's own files declare: modules.json with a Pooling module (its
// config.json's pooling_mode_cls_token / _mean_tokens / _lasttoken; Normalize present or not) and
// sentence_bert_config.json, beside a Hugging Face folder (or beside a GGUF file); a GGUF file's
// {arch}.pooling_type (1 mean, 2 cls, 3 last). Without either: the default given. Throws
// Error(unsupported) for pooling modes slm does not implement (max, weighted mean).
PoolingConfig read_pooling_config(const std::string& model_path, Pooling default_mode);

const char* pooling_name(Pooling p);
// "cls", "mean", "last" (also "lasttoken"); Error(invalid_argument) otherwise.
Pooling parse_pooling(const std::string& name);

// Pools rows [n][dim] (mean over all rows, the first, or the last) and L2-normalizes when asked.
std::vector<float> pool_rows(const float* rows, int64_t n, int64_t dim, Pooling mode, bool normalize);

class Encoder {
 public:
  // A folder with config.json of model_type "bert" or "nomic_bert" (and tokenizer.json), or a GGUF
  // file of architecture "bert" or "nomic-bert". Weights are converted to f32 once.
  static std::shared_ptr<const Encoder> load(const std::string& path);
  // Whether `path` is a model this class loads (cheap: reads config.json or the GGUF header).
  static bool is_encoder(const std::string& path);

  const EncoderConfig& config() const { return config_; }
  const WordPieceTokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::string& path() const { return path_; }

  // last_hidden_state of each sequence, computed in one batch (projections over all rows at
  // once, attention within each sequence): hidden[rows of all sequences][dim]. Token types are 0.
  // Sequences must be non-empty, at most max_positions long, with ids below vocab_size.
  std::vector<float> forward(const std::vector<std::vector<int32_t>>& sequences) const;
  // Pooled (and normalized) embeddings, one per sequence.
  std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& sequences, Pooling mode,
                                        bool normalize) const;

 private:
  struct Layer {
    std::vector<float> wq, bq, wk, bk, wv, bv, wo, bo, attn_norm_w, attn_norm_b;
    std::vector<float> w_up, b_up, w_gate, w_down, b_down, out_norm_w, out_norm_b;
  };
  Encoder() = default;
  void load_tensors(const std::function<const std::vector<float>*(const std::string&)>& get);

  std::string path_;
  EncoderConfig config_;
  std::unique_ptr<WordPieceTokenizer> tokenizer_;
  std::vector<float> tok_embd_, pos_embd_, type_embd_, embd_norm_w_, embd_norm_b_;
  std::vector<Layer> layers_;
};

// Canonical (GGUF) name of a nomic_bert tensor name (emb_ln, encoder.layers.N.attn.Wqkv, mlp.fc11 /
// fc12 / fc2, norm1 / norm2); empty for tensors the encoder does not use.
std::string nomic_bert_tensor_name(const std::string& hf_name);

// Canonical (GGUF) name of a Hugging Face BERT tensor name ("bert." prefix, gamma/beta accepted);
// empty for tensors the encoder does not use (pooler, heads, position_ids).
std::string bert_tensor_name(const std::string& hf_name);

}  // namespace slm
