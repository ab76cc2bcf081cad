#include "slm/model/model.hpp"

#include <cstring>
#include <filesystem>
#include <map>

#include "slm/format/gguf.hpp"
#include "slm/format/quant.hpp"
#include "slm/format/safetensors.hpp"
#include "slm/model/tensor_names.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace fs = std::filesystem;

size_t Matrix::bytes() const { return size_t(rows) * dtype_row_bytes(type, uint64_t(cols)); }

Model::~Model() = default;

namespace {

bool is_gguf_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4] = {};
  const size_t n = std::fread(magic, 1, 4, f);
  std::fclose(f);
  return n == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

std::shared_ptr<const Model> Model::load(const std::string& path, const LoadOptions& options) {
  std::shared_ptr<Model> model(new Model());
  model->path_ = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    model->format_ = "safetensors";
    model->config_ = ModelConfig::from_hf_folder(path);
    model->safetensors_ = std::make_unique<safetensors::Archive>(safetensors::Archive::open(path));
    for (const auto& t : model->safetensors_->tensors()) {
      auto canonical = hf_to_gguf_name(t.name, model->config_.arch);
      if (!canonical) continue;
      TensorEntry e;
      e.name = *canonical;
      e.file_name = t.name;
      e.type = t.type;
      e.shape.assign(t.shape.begin(), t.shape.end());
      e.data = t.data;
      e.bytes = t.n_bytes;
      model->tensors_.push_back(std::move(e));
    }
    if (options.load_tokenizer) {
      if (fs::exists(fs::path(path) / "tokenizer.json")) {
        model->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(path));
      }
    }
  } else if (fs::is_regular_file(path, ec)) {
    if (!is_gguf_file(path)) {
      fail(ErrorKind::format, "'{}' is neither a GGUF file (magic 'GGUF') nor a Hugging Face model folder", path);
    }
    model->format_ = "gguf";
    model->gguf_ = std::make_unique<gguf::File>(gguf::File::open(path));
    model->config_ = ModelConfig::from_gguf(*model->gguf_);
    for (const auto& t : model->gguf_->tensors()) {
      TensorEntry e;
      e.name = t.name;
      e.file_name = t.name;
      e.type = t.type;
      e.shape.assign(t.dims.rbegin(), t.dims.rend());
      e.data = model->gguf_->tensor_data(t);
      e.bytes = t.n_bytes();
      model->tensors_.push_back(std::move(e));
    }
    if (options.load_tokenizer && model->gguf_->find("tokenizer.ggml.tokens")) {
      model->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::data_from_gguf(*model->gguf_));
    }
  } else {
    fail(ErrorKind::not_found, "model '{}' does not exist (expected a GGUF file or a Hugging Face folder)", path);
  }
  model->bind();
  return model;
}

const TensorEntry* Model::find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const TensorEntry& Model::require(const std::string& name, std::vector<int64_t> shape) const {
  const TensorEntry* t = find(name);
  if (!t) fail(ErrorKind::format, "model '{}': missing tensor '{}' (expected shape {})", path_, name, shape_text(shape));
  if (t->shape != shape) {
    fail(ErrorKind::format, "model '{}': tensor '{}' has shape {}, expected {}", path_, name, shape_text(t->shape),
         shape_text(shape));
  }
  return *t;
}

Matrix Model::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  const TensorEntry& t = require(name, {rows, cols});
  if (!quant_supported(t.type)) {
    fail(ErrorKind::unsupported,
         "model '{}': tensor '{}' has type {}; supported weight types: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, "
         "q2_K, q3_K, q4_K, q5_K, q6_K, q8_K, iq4_nl, iq4_xs",
         path_, name, dtype_name(t.type));
  }
  if (cols % int64_t(dtype_traits(t.type).block_size) != 0) {
    fail(ErrorKind::format, "model '{}': tensor '{}' of type {} has rows of {} elements, not whole blocks of {}", path_,
         name, dtype_name(t.type), cols, dtype_traits(t.type).block_size);
  }
  return Matrix{name, t.type, rows, cols, t.data};
}

std::vector<float> Model::vector(const std::string& name, int64_t n) const {
  const TensorEntry& t = require(name, {n});
  if (!quant_supported(t.type) || n % int64_t(dtype_traits(t.type).block_size) != 0) {
    fail(ErrorKind::unsupported, "model '{}': tensor '{}' has type {}; expected f32, f16, bf16 or a block format", path_,
         name, dtype_name(t.type));
  }
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(t.type, t.data, out.data(), n);
  return out;
}

Matrix Model::matrix_rows(const std::string& name, int64_t rows, int64_t cols, int64_t first, int64_t count) const {
  Matrix whole = matrix(name, rows, cols);
  whole.name = fmt::format("{}[{}:{}]", name, first, first + count);
  whole.data = static_cast<const uint8_t*>(whole.data) + size_t(first) * dtype_row_bytes(whole.type, uint64_t(cols));
  whole.rows = count;
  return whole;
}

std::vector<float> Model::norm(const std::string& name, int64_t n) const {
  std::vector<float> w = vector(name, n);
  if (config_.norm_weight_offset && format_ == "safetensors") {
    for (float& v : w) v += 1.0f;
  }
  return w;
}

void Model::bind() {
  const ModelConfig& c = config_;
  weights_.token_embd = matrix("token_embd.weight", c.vocab_size, c.dim);
  weights_.output_norm = norm("output_norm.weight", c.dim);
  if (find("output.weight")) {
    weights_.output = matrix("output.weight", c.vocab_size, c.dim);
  } else {
    if (!c.tied_output && format_ == "safetensors") {
      fail(ErrorKind::format, "model '{}': missing tensor 'lm_head.weight' (tie_word_embeddings is false)", path_);
    }
    weights_.output = weights_.token_embd;
  }
  weights_.layers.resize(size_t(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights& w = weights_.layers[size_t(l)];
    w.attn_norm = norm(p + "attn_norm.weight", c.dim);
    if (find(p + "attn_qkv.weight")) {
      // Fused Q, K, V rows (Phi-3).
      const int64_t rows = c.q_dim() + 2 * c.kv_dim();
      w.wq = matrix_rows(p + "attn_qkv.weight", rows, c.dim, 0, c.q_dim());
      w.wk = matrix_rows(p + "attn_qkv.weight", rows, c.dim, c.q_dim(), c.kv_dim());
      w.wv = matrix_rows(p + "attn_qkv.weight", rows, c.dim, c.q_dim() + c.kv_dim(), c.kv_dim());
    } else {
      w.wq = matrix(p + "attn_q.weight", c.q_dim(), c.dim);
      w.wk = matrix(p + "attn_k.weight", c.kv_dim(), c.dim);
      w.wv = matrix(p + "attn_v.weight", c.kv_dim(), c.dim);
    }
    w.wo = matrix(p + "attn_output.weight", c.dim, c.q_dim());
    if (c.qkv_bias) {
      w.bq = vector(p + "attn_q.bias", c.q_dim());
      w.bk = vector(p + "attn_k.bias", c.kv_dim());
      w.bv = vector(p + "attn_v.bias", c.kv_dim());
    }
    if (c.qk_norm) {
      w.q_norm = norm(p + "attn_q_norm.weight", c.head_dim);
      w.k_norm = norm(p + "attn_k_norm.weight", c.head_dim);
    }
    w.ffn_norm = norm(p + "ffn_norm.weight", c.dim);
    if (c.post_norms) {
      w.post_attn_norm = norm(p + "post_attention_norm.weight", c.dim);
      w.post_ffn_norm = norm(p + "post_ffw_norm.weight", c.dim);
    }
    if (!find(p + "ffn_gate.weight") && find(p + "ffn_up.weight")) {
      // Fused gate and up rows, gate first (Phi-3).
      w.w_gate = matrix_rows(p + "ffn_up.weight", 2 * c.ffn_dim, c.dim, 0, c.ffn_dim);
      w.w_up = matrix_rows(p + "ffn_up.weight", 2 * c.ffn_dim, c.dim, c.ffn_dim, c.ffn_dim);
    } else {
      w.w_gate = matrix(p + "ffn_gate.weight", c.ffn_dim, c.dim);
      w.w_up = matrix(p + "ffn_up.weight", c.ffn_dim, c.dim);
    }
    w.w_down = matrix(p + "ffn_down.weight", c.dim, c.ffn_dim);
  }
  if (tokenizer_ && tokenizer_->vocab_size() > size_t(c.vocab_size)) {
    fail(ErrorKind::format, "model '{}': the tokenizer has {} tokens but the model's vocabulary is {}", path_,
         tokenizer_->vocab_size(), c.vocab_size);
  }
}

size_t Model::weight_bytes_per_token() const {
  size_t total = weights_.output.bytes();
  for (const auto& w : weights_.layers) {
    total += w.wq.bytes() + w.wk.bytes() + w.wv.bytes() + w.wo.bytes() + w.w_gate.bytes() + w.w_up.bytes() +
             w.w_down.bytes();
  }
  return total;
}

size_t Model::total_weight_bytes() const {
  size_t total = 0;
  for (const auto& t : tensors_) total += t.bytes;
  return total;
}

}  // namespace slm
