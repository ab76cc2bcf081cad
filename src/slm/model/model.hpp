// A loaded model: its configuration, its weights bound by canonical name (mmapped, never copied,
// except small vectors converted to f32), and its tokenizer when the files carry one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slm/format/dtype.hpp"
#include "slm/model/config.hpp"
#include "slm/tokenizer/tokenizer.hpp"

namespace slm::gguf {
class File;
}
namespace slm::safetensors {
class Archive;
}

namespace slm {

// A weight matrix inside a mapping: row-major [rows][cols] (rows = outputs, cols = inputs).
struct Matrix {
  std::string name;
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  size_t bytes() const;
};

struct LayerWeights {
  std::vector<float> attn_norm;           // [dim]
  Matrix wq, wk, wv, wo;                  // [q_dim][dim], [kv_dim][dim], [kv_dim][dim], [dim][q_dim]
  std::vector<float> bq, bk, bv;          // qkv_bias only
  std::vector<float> q_norm, k_norm;      // qk_norm only: [head_dim]
  std::vector<float> ffn_norm;            // [dim]
  Matrix w_gate, w_up, w_down;            // [ffn][dim], [ffn][dim], [dim][ffn]
  std::vector<float> post_attn_norm;      // post_norms only: [dim], on the attention output
  std::vector<float> post_ffn_norm;       // post_norms only: [dim], on the MLP output
};

struct Weights {
  Matrix token_embd;                      // [vocab][dim]
  std::vector<LayerWeights> layers;
  std::vector<float> output_norm;         // [dim]
  Matrix output;                          // [vocab][dim]; the embedding itself when tied
};

// A tensor as the file holds it (for `slm info` and `slm convert`).
struct TensorEntry {
  std::string name;            // canonical (GGUF) name
  std::string file_name;       // the name in the file
  DType type = DType::F32;
  std::vector<int64_t> shape;  // outermost first
  const void* data = nullptr;
  size_t bytes = 0;
};

struct LoadOptions {
  bool load_tokenizer = true;  // a missing tokenizer is not an error; tokenizer() is then null
};

class Model {
 public:
  // `path`: a GGUF file or a Hugging Face folder (config.json + *.safetensors).
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& options = {});
  ~Model();

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }  // "gguf" or "safetensors"
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const gguf::File* gguf() const { return gguf_.get(); }
  // Bytes of weights one generated token reads (every matrix once; the embedding row is negligible).
  size_t weight_bytes_per_token() const;
  size_t total_weight_bytes() const;

 private:
  Model() = default;
  void bind();
  const TensorEntry& require(const std::string& name, std::vector<int64_t> shape) const;
  const TensorEntry* find(const std::string& name) const;
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols) const;
  // Rows [first, first + count) of a [rows][cols] tensor (a fused projection) as a matrix of its own.
  Matrix matrix_rows(const std::string& name, int64_t rows, int64_t cols, int64_t first, int64_t count) const;
  // An RMSNorm weight: Hugging Face Gemma files store w for x * (1 + w); returned as 1 + w.
  std::vector<float> norm(const std::string& name, int64_t n) const;
  std::vector<float> vector(const std::string& name, int64_t n) const;

  std::string path_;
  std::string format_;
  ModelConfig config_;
  Weights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<TensorEntry> tensors_;
  std::unique_ptr<gguf::File> gguf_;
  std::unique_ptr<safetensors::Archive> safetensors_;
};

}  // namespace slm
