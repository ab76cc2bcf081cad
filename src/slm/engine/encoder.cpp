#include "slm/engine/encoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "slm/backend/cpu/matmul.hpp"
#include "slm/backend/cpu/ops.hpp"
#include "slm/format/gguf.hpp"
#include "slm/format/safetensors.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::io, "cannot open {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(ErrorKind::format, "{}: expected JSON, found a parse error: {}", path.string(), e.what());
  }
}

bool is_gguf_file(const std::string& path) {
  if (!fs::is_regular_file(path)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

int64_t require_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) fail(ErrorKind::format, "config.json: expected an integer '{}'", key);
  return it->get<int64_t>();
}

EncoderActivation activation_of(const std::string& act) {
  if (act == "gelu") return EncoderActivation::gelu_erf;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return EncoderActivation::gelu_tanh;
  if (act == "relu") return EncoderActivation::relu;
  fail(ErrorKind::unsupported, "config.json: hidden_act '{}' is not supported (gelu, gelu_new, relu are)", act);
}

EncoderConfig nomic_config_from_json(const json& j, const std::string& name) {
  EncoderConfig c;
  c.arch = "nomic-bert";
  c.name = name;
  c.vocab_size = require_int(j, "vocab_size");
  c.dim = require_int(j, "n_embd");
  c.n_layers = require_int(j, "n_layer");
  c.n_heads = require_int(j, "n_head");
  c.ffn_dim = require_int(j, "n_inner");
  c.max_positions = j.value("n_positions", int64_t(2048));
  c.type_vocab_size = j.value("type_vocab_size", int64_t(2));
  c.norm_eps = j.value("layer_norm_epsilon", 1e-12f);
  c.rotary = true;
  c.gated_mlp = true;
  c.rope_theta = j.value("rotary_emb_base", 10000.0f);
  const double fraction = j.value("rotary_emb_fraction", 1.0);
  if (c.n_heads > 0) c.rope_dim = int64_t(double(c.dim / c.n_heads) * fraction);
  auto require_false = [&](const char* key) {
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>()) {
      fail(ErrorKind::unsupported, "config.json: nomic_bert with {} true is not supported", key);
    }
  };
  for (const char* key : {"prenorm", "causal", "rotary_emb_interleaved", "qkv_proj_bias", "mlp_fc1_bias", "mlp_fc2_bias"}) {
    require_false(key);
  }
  if (j.contains("rotary_scaling_factor") && !j["rotary_scaling_factor"].is_null()) {
    fail(ErrorKind::unsupported, "config.json: nomic_bert with rotary_scaling_factor (dynamic NTK) is not supported");
  }
  const std::string act = j.value("activation_function", "swiglu");
  if (act != "swiglu") fail(ErrorKind::unsupported, "config.json: nomic_bert activation_function '{}' (swiglu is supported)", act);
  return c;
}

EncoderConfig config_from_json(const json& j, const std::string& name) {
  if (!j.is_object()) fail(ErrorKind::format, "config.json: expected an object");
  const std::string type = j.value("model_type", "");
  if (type == "nomic_bert") return nomic_config_from_json(j, name);
  if (type != "bert") {
    fail(ErrorKind::unsupported, "config.json: model_type '{}' is not an encoder slm runs (bert and nomic_bert are)", type);
  }
  const std::string pos = j.value("position_embedding_type", "absolute");
  if (pos != "absolute") fail(ErrorKind::unsupported, "config.json: position_embedding_type '{}' (absolute is supported)", pos);
  EncoderConfig c;
  c.name = name;
  c.vocab_size = require_int(j, "vocab_size");
  c.dim = require_int(j, "hidden_size");
  c.n_layers = require_int(j, "num_hidden_layers");
  c.n_heads = require_int(j, "num_attention_heads");
  c.ffn_dim = require_int(j, "intermediate_size");
  c.max_positions = j.value("max_position_embeddings", int64_t(512));
  c.type_vocab_size = j.value("type_vocab_size", int64_t(2));
  c.norm_eps = j.value("layer_norm_eps", 1e-12f);
  c.activation = activation_of(j.value("hidden_act", "gelu"));
  return c;
}

void validate(const EncoderConfig& c) {
  if (c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.ffn_dim <= 0 || c.vocab_size <= 0 || c.max_positions <= 0 ||
      c.type_vocab_size <= 0) {
    fail(ErrorKind::format, "encoder: expected positive sizes, found dim {} layers {} heads {} ffn {} vocab {} positions {} types {}",
         c.dim, c.n_layers, c.n_heads, c.ffn_dim, c.vocab_size, c.max_positions, c.type_vocab_size);
  }
  if (c.dim % c.n_heads != 0) fail(ErrorKind::format, "encoder: hidden size {} is not a multiple of {} heads", c.dim, c.n_heads);
  if (c.rotary && (c.rope_dim <= 0 || c.rope_dim > c.head_dim() || c.rope_dim % 2 != 0)) {
    fail(ErrorKind::format, "encoder: expected an even rotary dimension in (0, {}], found {}", c.head_dim(), c.rope_dim);
  }
}

void layer_norm(float* x, const float* w, const float* b, int64_t rows, int64_t n, float eps) {
#pragma omp parallel for if (rows * n > (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * n;
    double mean = 0.0;
    for (int64_t i = 0; i < n; ++i) mean += v[i];
    mean /= double(n);
    double var = 0.0;
    for (int64_t i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
    var /= double(n);
    const double inv = 1.0 / std::sqrt(var + double(eps));
    for (int64_t i = 0; i < n; ++i) v[i] = float((v[i] - mean) * inv) * w[i] + b[i];
  }
}

void linear(const std::vector<float>& w, const std::vector<float>& b, int64_t n_out, int64_t n_in, const float* x,
            int64_t rows, float* y) {
  cpu::matmul(DType::F32, w.data(), n_out, n_in, x, rows, y);
#pragma omp parallel for if (rows * n_out > (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * n_out;
    for (int64_t o = 0; o < n_out; ++o) yr[o] += b[size_t(o)];
  }
}

void activate(float* x, int64_t n, EncoderActivation act) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    switch (act) {
      case EncoderActivation::gelu_erf:
        x[i] = 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
        break;
      case EncoderActivation::gelu_tanh:
        x[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        break;
      case EncoderActivation::relu:
        x[i] = v > 0.0f ? v : 0.0f;
        break;
    }
  }
}

// Bidirectional attention of one sequence's rows: q, k, v, out with row stride `stride`.
void attention_full(const float* q, const float* k, const float* v, int64_t n, int64_t n_heads, int64_t head_dim,
                    int64_t stride, float* out) {
  const float scale = 1.0f / std::sqrt(float(head_dim));
  // Small sequences stay on one thread: a parallel region costs more than their work.
#pragma omp parallel if (n * n * n_heads * head_dim > (int64_t(1) << 18))
  {
    std::vector<float> scores(static_cast<size_t>(n));
#pragma omp for collapse(2)
    for (int64_t h = 0; h < n_heads; ++h) {
      for (int64_t i = 0; i < n; ++i) {
        const float* qi = q + i * stride + h * head_dim;
        float max = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          const float* kj = k + j * stride + h * head_dim;
          float s = 0.0f;
          for (int64_t d = 0; d < head_dim; ++d) s += qi[d] * kj[d];
          s *= scale;
          scores[size_t(j)] = s;
          max = std::max(max, s);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n; ++j) {
          scores[size_t(j)] = std::exp(scores[size_t(j)] - max);
          sum += scores[size_t(j)];
        }
        float* o = out + i * stride + h * head_dim;
        std::fill(o, o + head_dim, 0.0f);
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < n; ++j) {
          const float p = scores[size_t(j)] * inv;
          const float* vj = v + j * stride + h * head_dim;
          for (int64_t d = 0; d < head_dim; ++d) o[d] += p * vj[d];
        }
      }
    }
  }
}

// f32 copy of a tensor's elements (the data may be unaligned).
std::vector<float> to_f32_vector(DType type, const void* data, size_t n_bytes, int64_t n_elements) {
  std::vector<uint8_t> aligned(n_bytes);
  std::memcpy(aligned.data(), data, n_bytes);
  std::vector<float> out(static_cast<size_t>(n_elements));
  cpu::to_f32(type, aligned.data(), out.data(), n_elements);
  return out;
}

}  // namespace

std::string bert_tensor_name(const std::string& hf) {
  std::string n = hf;
  if (n.starts_with("bert.")) n = n.substr(5);
  if (n.ends_with(".gamma")) n = n.substr(0, n.size() - 6) + ".weight";
  if (n.ends_with(".beta")) n = n.substr(0, n.size() - 5) + ".bias";
  static const std::map<std::string, std::string> globals = {
      {"embeddings.word_embeddings.weight", "token_embd.weight"},
      {"embeddings.position_embeddings.weight", "position_embd.weight"},
      {"embeddings.token_type_embeddings.weight", "token_types.weight"},
      {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
      {"embeddings.LayerNorm.bias", "token_embd_norm.bias"},
  };
  if (auto it = globals.find(n); it != globals.end()) return it->second;
  const std::string prefix = "encoder.layer.";
  if (!n.starts_with(prefix)) return "";
  const size_t dot = n.find('.', prefix.size());
  if (dot == std::string::npos) return "";
  const std::string layer = n.substr(prefix.size(), dot - prefix.size());
  if (layer.empty() || !std::all_of(layer.begin(), layer.end(), [](char c) { return c >= '0' && c <= '9'; })) return "";
  const std::string leaf = n.substr(dot + 1);
  static const std::map<std::string, std::string> per_layer = {
      {"attention.self.query", "attn_q"},          {"attention.self.key", "attn_k"},
      {"attention.self.value", "attn_v"},          {"attention.output.dense", "attn_output"},
      {"attention.output.LayerNorm", "attn_output_norm"}, {"intermediate.dense", "ffn_up"},
      {"output.dense", "ffn_down"},                {"output.LayerNorm", "layer_output_norm"},
  };
  const size_t last = leaf.rfind('.');
  if (last == std::string::npos) return "";
  auto it = per_layer.find(leaf.substr(0, last));
  if (it == per_layer.end()) return "";
  return "blk." + layer + "." + it->second + leaf.substr(last);
}

std::string nomic_bert_tensor_name(const std::string& hf) {
  static const std::map<std::string, std::string> globals = {
      {"embeddings.word_embeddings.weight", "token_embd.weight"},
      {"embeddings.token_type_embeddings.weight", "token_types.weight"},
      {"emb_ln.weight", "token_embd_norm.weight"},
      {"emb_ln.bias", "token_embd_norm.bias"},
  };
  if (auto it = globals.find(hf); it != globals.end()) return it->second;
  const std::string prefix = "encoder.layers.";
  if (!hf.starts_with(prefix)) return "";
  const size_t dot = hf.find('.', prefix.size());
  if (dot == std::string::npos) return "";
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  if (layer.empty() || !std::all_of(layer.begin(), layer.end(), [](char c) { return c >= '0' && c <= '9'; })) return "";
  static const std::map<std::string, std::string> per_layer = {
      {"attn.Wqkv.weight", "attn_qkv.weight"}, {"attn.out_proj.weight", "attn_output.weight"},
      {"mlp.fc11.weight", "ffn_up.weight"},    {"mlp.fc12.weight", "ffn_gate.weight"},
      {"mlp.fc2.weight", "ffn_down.weight"},   {"norm1.weight", "attn_output_norm.weight"},
      {"norm1.bias", "attn_output_norm.bias"}, {"norm2.weight", "layer_output_norm.weight"},
      {"norm2.bias", "layer_output_norm.bias"},
  };
  auto it = per_layer.find(hf.substr(dot + 1));
  if (it == per_layer.end()) return "";
  return "blk." + layer + "." + it->second;
}

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::cls: return "cls";
    case Pooling::mean: return "mean";
    case Pooling::last: return "last";
  }
  return "?";
}

Pooling parse_pooling(const std::string& name) {
  if (name == "cls") return Pooling::cls;
  if (name == "mean") return Pooling::mean;
  if (name == "last" || name == "lasttoken") return Pooling::last;
  fail(ErrorKind::invalid_argument, "pooling: expected cls, mean or last, found '{}'", name);
}

PoolingConfig read_pooling_config(const std::string& model_path, Pooling default_mode) {
  PoolingConfig pc;
  pc.mode = default_mode;
  const bool gguf_file = is_gguf_file(model_path);
  const fs::path dir = fs::is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
  const fs::path modules_path = dir / "modules.json";
  if (fs::is_regular_file(modules_path) && (!gguf_file || fs::is_regular_file(dir / "1_Pooling" / "config.json"))) {
    const json modules = read_json(modules_path);
    if (!modules.is_array()) fail(ErrorKind::format, "{}: expected an array of modules", modules_path.string());
    bool have_pooling = false;
    pc.normalize = false;
    for (const json& m : modules) {
      const std::string type = m.value("type", "");
      if (type.ends_with(".Normalize")) pc.normalize = true;
      if (type.ends_with(".Dense")) {
        // A projection after pooling: without it the vectors would silently differ from the model's.
        fail(ErrorKind::unsupported, "{}: module '{}' is a Dense projection, which slm does not apply yet",
             modules_path.string(), m.value("path", ""));
      }
      if (!type.ends_with(".Pooling")) continue;
      const fs::path cfg_path = dir / m.value("path", "1_Pooling") / "config.json";
      const json cfg = read_json(cfg_path);
      if (cfg.value("pooling_mode_max_tokens", false) || cfg.value("pooling_mode_weightedmean_tokens", false) ||
          cfg.value("pooling_mode_mean_sqrt_len_tokens", false)) {
        fail(ErrorKind::unsupported, "{}: only cls, mean and last-token pooling are supported", cfg_path.string());
      }
      const int modes = int(cfg.value("pooling_mode_cls_token", false)) + int(cfg.value("pooling_mode_mean_tokens", false)) +
                        int(cfg.value("pooling_mode_lasttoken", false));
      if (modes != 1) fail(ErrorKind::unsupported, "{}: expected exactly one pooling mode, found {}", cfg_path.string(), modes);
      if (cfg.value("pooling_mode_cls_token", false)) pc.mode = Pooling::cls;
      if (cfg.value("pooling_mode_mean_tokens", false)) pc.mode = Pooling::mean;
      if (cfg.value("pooling_mode_lasttoken", false)) pc.mode = Pooling::last;
      have_pooling = true;
      pc.source = cfg_path.string();
    }
    if (!have_pooling) {
      pc.mode = default_mode;
      pc.normalize = true;
    } else {
      pc.from_model = true;
    }
    const fs::path sbert = dir / "sentence_bert_config.json";
    if (fs::is_regular_file(sbert)) {
      const json s = read_json(sbert);
      if (s.contains("max_seq_length") && s["max_seq_length"].is_number_integer()) pc.max_seq_length = s["max_seq_length"].get<int64_t>();
    }
    return pc;
  }
  if (gguf_file) {
    const gguf::File file = gguf::File::open(model_path);
    const std::string arch = file.get_string("general.architecture").value_or("");
    if (auto t = file.get_int(arch + ".pooling_type")) {
      pc.from_model = true;
      pc.source = arch + ".pooling_type";
      switch (*t) {
        case 1: pc.mode = Pooling::mean; break;
        case 2: pc.mode = Pooling::cls; break;
        case 3: pc.mode = Pooling::last; break;
        default: pc.from_model = false; pc.source.clear(); break;
      }
    }
  }
  return pc;
}

std::vector<float> pool_rows(const float* rows, int64_t n, int64_t dim, Pooling mode, bool normalize) {
  if (n <= 0) fail(ErrorKind::invalid_argument, "pooling: expected at least one row, found none");
  std::vector<double> acc(static_cast<size_t>(dim), 0.0);
  if (mode == Pooling::mean) {
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t d = 0; d < dim; ++d) acc[size_t(d)] += rows[r * dim + d];
    }
    for (auto& v : acc) v /= double(n);
  } else {
    const float* row = rows + (mode == Pooling::cls ? 0 : (n - 1)) * dim;
    for (int64_t d = 0; d < dim; ++d) acc[size_t(d)] = row[d];
  }
  double norm = 1.0;
  if (normalize) {
    double sum = 0.0;
    for (double v : acc) sum += v * v;
    norm = std::sqrt(sum);
    if (norm == 0.0) norm = 1.0;
  }
  std::vector<float> out(static_cast<size_t>(dim));
  for (int64_t d = 0; d < dim; ++d) out[size_t(d)] = float(acc[size_t(d)] / norm);
  return out;
}

bool Encoder::is_encoder(const std::string& path) {
  try {
    if (fs::is_directory(path)) {
      const fs::path cfg = fs::path(path) / "config.json";
      if (!fs::is_regular_file(cfg)) return false;
      const std::string type = read_json(cfg).value("model_type", "");
      return type == "bert" || type == "nomic_bert";
    }
    if (is_gguf_file(path)) {
      const gguf::File file = gguf::File::open(path);
      const std::string arch = file.get_string("general.architecture").value_or("");
      return arch == "bert" || arch == "nomic-bert";
    }
  } catch (const Error&) {
    return false;
  }
  return false;
}

void Encoder::load_tensors(const std::function<const std::vector<float>*(const std::string&)>& get) {
  const EncoderConfig& c = config_;
  auto take = [&](const std::string& name, int64_t n) {
    const std::vector<float>* v = get(name);
    if (!v) fail(ErrorKind::not_found, "encoder: tensor {} is missing", name);
    if (int64_t(v->size()) != n) fail(ErrorKind::format, "encoder: tensor {} has {} elements, expected {}", name, v->size(), n);
    return *v;
  };
  tok_embd_ = take("token_embd.weight", c.vocab_size * c.dim);
  if (!c.rotary) pos_embd_ = take("position_embd.weight", c.max_positions * c.dim);
  type_embd_ = take("token_types.weight", c.type_vocab_size * c.dim);
  embd_norm_w_ = take("token_embd_norm.weight", c.dim);
  embd_norm_b_ = take("token_embd_norm.bias", c.dim);
  layers_.resize(size_t(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = layers_[size_t(l)];
    const auto d = size_t(c.dim);
    if (c.rotary) {  // nomic_bert: fused q, k, v rows; no biases
      const std::vector<float> qkv = take(p + "attn_qkv.weight", 3 * c.dim * c.dim);
      L.wq.assign(qkv.begin(), qkv.begin() + std::ptrdiff_t(d * d));
      L.wk.assign(qkv.begin() + std::ptrdiff_t(d * d), qkv.begin() + std::ptrdiff_t(2 * d * d));
      L.wv.assign(qkv.begin() + std::ptrdiff_t(2 * d * d), qkv.end());
      L.bq.assign(d, 0.0f);
      L.bk.assign(d, 0.0f);
      L.bv.assign(d, 0.0f);
      L.bo.assign(d, 0.0f);
      L.b_up.assign(size_t(c.ffn_dim), 0.0f);
      L.b_down.assign(d, 0.0f);
    } else {
      L.wq = take(p + "attn_q.weight", c.dim * c.dim);
      L.bq = take(p + "attn_q.bias", c.dim);
      L.wk = take(p + "attn_k.weight", c.dim * c.dim);
      L.bk = take(p + "attn_k.bias", c.dim);
      L.wv = take(p + "attn_v.weight", c.dim * c.dim);
      L.bv = take(p + "attn_v.bias", c.dim);
      L.bo = take(p + "attn_output.bias", c.dim);
      L.b_up = take(p + "ffn_up.bias", c.ffn_dim);
      L.b_down = take(p + "ffn_down.bias", c.dim);
    }
    L.wo = take(p + "attn_output.weight", c.dim * c.dim);
    L.attn_norm_w = take(p + "attn_output_norm.weight", c.dim);
    L.attn_norm_b = take(p + "attn_output_norm.bias", c.dim);
    L.w_up = take(p + "ffn_up.weight", c.ffn_dim * c.dim);
    if (c.gated_mlp) L.w_gate = take(p + "ffn_gate.weight", c.ffn_dim * c.dim);
    L.w_down = take(p + "ffn_down.weight", c.dim * c.ffn_dim);
    L.out_norm_w = take(p + "layer_output_norm.weight", c.dim);
    L.out_norm_b = take(p + "layer_output_norm.bias", c.dim);
  }
}

std::shared_ptr<const Encoder> Encoder::load(const std::string& path) {
  std::shared_ptr<Encoder> e(new Encoder());
  e->path_ = path;
  std::map<std::string, std::vector<float>> tensors;
  if (fs::is_directory(path)) {
    e->config_ = config_from_json(read_json(fs::path(path) / "config.json"), fs::path(path).filename().string());
    validate(e->config_);
    const safetensors::Archive archive = safetensors::Archive::open(path);
    for (const auto& t : archive.tensors()) {
      const std::string name = e->config_.rotary ? nomic_bert_tensor_name(t.name) : bert_tensor_name(t.name);
      if (name.empty()) continue;
      int64_t n = 1;
      for (uint64_t d : t.shape) n *= int64_t(d);
      tensors[name] = to_f32_vector(t.type, t.data, t.n_bytes, n);
    }
    if (fs::is_regular_file(fs::path(path) / "tokenizer.json")) {
      e->tokenizer_ = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(path));
    }
  } else if (is_gguf_file(path)) {
    const gguf::File file = gguf::File::open(path);
    const std::string arch = file.get_string("general.architecture").value_or("");
    if (arch != "bert" && arch != "nomic-bert") {
      fail(ErrorKind::unsupported, "{}: expected architecture 'bert' or 'nomic-bert', found '{}'", path, arch);
    }
    auto get = [&](const std::string& key) {
      auto v = file.get_int(arch + "." + key);
      if (!v) fail(ErrorKind::not_found, "{}: key {}.{} is missing", path, arch, key);
      return *v;
    };
    EncoderConfig& c = e->config_;
    c.arch = arch;
    if (arch == "nomic-bert") {
      c.rotary = true;
      c.gated_mlp = true;
      c.rope_theta = float(file.get_float("nomic-bert.rope.freq_base").value_or(10000.0));
    }
    c.name = file.get_string("general.name").value_or(fs::path(path).stem().string());
    c.dim = get("embedding_length");
    c.n_layers = get("block_count");
    c.ffn_dim = get("feed_forward_length");
    c.n_heads = get("attention.head_count");
    c.norm_eps = float(file.get_float(arch + ".attention.layer_norm_epsilon").value_or(1e-12));
    if (c.rotary) {
      c.max_positions = file.get_int(arch + ".context_length").value_or(2048);
      if (c.n_heads > 0) c.rope_dim = c.dim / c.n_heads;
    }
    for (const auto& t : file.tensors()) {
      const uint64_t n = t.n_elements();
      tensors[t.name] = to_f32_vector(t.type, file.tensor_data(t), t.n_bytes(), int64_t(n));
      if (t.name == "token_embd.weight" && t.dims.size() == 2) c.vocab_size = int64_t(t.dims[1]);
      if (t.name == "position_embd.weight" && t.dims.size() == 2) c.max_positions = int64_t(t.dims[1]);
      if (t.name == "token_types.weight" && t.dims.size() == 2) c.type_vocab_size = int64_t(t.dims[1]);
    }
    validate(c);
    e->tokenizer_ = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_gguf(file));
  } else {
    fail(ErrorKind::not_found, "{}: expected a model folder with config.json or a GGUF file", path);
  }
  e->load_tensors([&](const std::string& name) -> const std::vector<float>* {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  });
  if (e->tokenizer_ && int64_t(e->tokenizer_->vocab_size()) > e->config_.vocab_size) {
    fail(ErrorKind::format, "{}: the tokenizer has {} tokens, the model's embedding {} rows", path,
         e->tokenizer_->vocab_size(), e->config_.vocab_size);
  }
  return e;
}

std::vector<float> Encoder::forward(const std::vector<std::vector<int32_t>>& sequences) const {
  const EncoderConfig& c = config_;
  const int64_t dim = c.dim;
  int64_t rows = 0;
  for (const auto& s : sequences) {
    if (s.empty()) fail(ErrorKind::invalid_argument, "encoder: expected non-empty token sequences, found an empty one");
    if (int64_t(s.size()) > c.max_positions) {
      fail(ErrorKind::out_of_range, "encoder: a sequence of {} tokens exceeds the model's {} positions", s.size(), c.max_positions);
    }
    for (int32_t id : s) {
      if (id < 0 || id >= c.vocab_size) fail(ErrorKind::invalid_argument, "encoder: token id {} is outside the vocabulary of {}", id, c.vocab_size);
    }
    rows += int64_t(s.size());
  }
  std::vector<float> x(size_t(rows * dim)), q(x.size()), k(x.size()), v(x.size()), a(x.size()), t(x.size());
  std::vector<float> up(size_t(rows * c.ffn_dim)), gate(c.gated_mlp ? up.size() : 0);
  std::vector<int32_t> positions;
  std::vector<float> inv_freq;
  if (c.rotary) {
    for (const auto& s : sequences) {
      for (size_t p = 0; p < s.size(); ++p) positions.push_back(int32_t(p));
    }
    for (int64_t i = 0; i < c.rope_dim / 2; ++i) {
      inv_freq.push_back(float(1.0 / std::pow(double(c.rope_theta), double(2 * i) / double(c.rope_dim))));
    }
  }
  int64_t r = 0;
  for (const auto& s : sequences) {
    for (size_t p = 0; p < s.size(); ++p, ++r) {
      float* xr = x.data() + r * dim;
      const float* e = tok_embd_.data() + int64_t(s[p]) * dim;
      for (int64_t d = 0; d < dim; ++d) xr[d] = e[d] + type_embd_[size_t(d)];
      if (!pos_embd_.empty()) {
        const float* pe = pos_embd_.data() + int64_t(p) * dim;
        for (int64_t d = 0; d < dim; ++d) xr[d] += pe[d];
      }
    }
  }
  layer_norm(x.data(), embd_norm_w_.data(), embd_norm_b_.data(), rows, dim, c.norm_eps);
  for (const Layer& L : layers_) {
    linear(L.wq, L.bq, dim, dim, x.data(), rows, q.data());
    linear(L.wk, L.bk, dim, dim, x.data(), rows, k.data());
    linear(L.wv, L.bv, dim, dim, x.data(), rows, v.data());
    if (c.rotary) {
      cpu::rope(q.data(), rows, c.n_heads, c.head_dim(), c.rope_dim, positions.data(), inv_freq.data(), false);
      cpu::rope(k.data(), rows, c.n_heads, c.head_dim(), c.rope_dim, positions.data(), inv_freq.data(), false);
    }
    int64_t begin = 0;
    for (const auto& s : sequences) {
      const auto n = int64_t(s.size());
      attention_full(q.data() + begin * dim, k.data() + begin * dim, v.data() + begin * dim, n, c.n_heads, c.head_dim(), dim,
                     a.data() + begin * dim);
      begin += n;
    }
    linear(L.wo, L.bo, dim, dim, a.data(), rows, t.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += t[i];
    layer_norm(x.data(), L.attn_norm_w.data(), L.attn_norm_b.data(), rows, dim, c.norm_eps);
    linear(L.w_up, L.b_up, c.ffn_dim, dim, x.data(), rows, up.data());
    if (c.gated_mlp) {
      cpu::matmul(DType::F32, L.w_gate.data(), c.ffn_dim, dim, x.data(), rows, gate.data());
      cpu::silu_mul(gate.data(), up.data(), int64_t(gate.size()));  // gate = silu(gate) * up
      linear(L.w_down, L.b_down, dim, c.ffn_dim, gate.data(), rows, t.data());
    } else {
      activate(up.data(), int64_t(up.size()), c.activation);
      linear(L.w_down, L.b_down, dim, c.ffn_dim, up.data(), rows, t.data());
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += t[i];
    layer_norm(x.data(), L.out_norm_w.data(), L.out_norm_b.data(), rows, dim, c.norm_eps);
  }
  return x;
}

std::vector<std::vector<float>> Encoder::embed(const std::vector<std::vector<int32_t>>& sequences, Pooling mode,
                                               bool normalize) const {
  const std::vector<float> hidden = forward(sequences);
  std::vector<std::vector<float>> out;
  out.reserve(sequences.size());
  int64_t begin = 0;
  for (const auto& s : sequences) {
    out.push_back(pool_rows(hidden.data() + begin * config_.dim, int64_t(s.size()), config_.dim, mode, normalize));
    begin += int64_t(s.size());
  }
  return out;
}

}  // namespace slm
