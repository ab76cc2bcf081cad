#include "slm/model/config.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>

#include "slm/format/gguf.hpp"
#include "slm/util/error.hpp"
#include "slm/util/fp16.hpp"

namespace slm {
namespace {

// llama3 RoPE scaling: low frequencies divided by `factor`, high ones kept, a smooth blend between.
std::vector<float> llama3_freq_factors(int64_t rope_dim, float theta, float factor, float low_freq_factor,
                                       float high_freq_factor, int64_t original_context) {
  std::vector<float> factors(static_cast<size_t>(rope_dim / 2));
  const double low_freq_wavelen = double(original_context) / low_freq_factor;
  const double high_freq_wavelen = double(original_context) / high_freq_factor;
  for (int64_t i = 0; i < rope_dim / 2; ++i) {
    const double freq = std::pow(double(theta), -double(2 * i) / double(rope_dim));
    const double wavelen = 2.0 * std::numbers::pi / freq;
    double divisor = 1.0;
    if (wavelen > low_freq_wavelen) {
      divisor = factor;
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth = (double(original_context) / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      divisor = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    factors[size_t(i)] = float(divisor);
  }
  return factors;
}

template <typename T>
T json_get(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(ErrorKind::format, "config.json: key '{}' has an unexpected type ({})", key, it->type_name());
  }
}

int64_t json_require_int(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) {
    fail(ErrorKind::format, "config.json: expected integer key '{}', found {}", key,
         it == j.end() ? "nothing" : it->type_name());
  }
  return it->get<int64_t>();
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& j, const std::string& name) {
  if (!j.is_object()) fail(ErrorKind::format, "config.json: expected an object at the top level");
  ModelConfig c;
  c.name = name;
  std::string model_type = json_get<std::string>(j, "model_type", "");
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string()) {
    c.hf_arch = (*it)[0].get<std::string>();
  }
  if (model_type == "llama" || model_type == "mistral") {
    c.arch = "llama";
  } else if (model_type == "qwen2") {
    c.arch = "qwen2";
    c.qkv_bias = true;
  } else if (model_type == "qwen3") {
    c.arch = "qwen3";
    c.qk_norm = true;
  } else {
    fail(ErrorKind::unsupported,
         "config.json: model_type '{}' ({}) is not supported; supported: llama, mistral, qwen2, qwen3", model_type,
         c.hf_arch.empty() ? "no architectures entry" : c.hf_arch);
  }
  c.dim = json_require_int(j, "hidden_size");
  c.n_layers = json_require_int(j, "num_hidden_layers");
  c.n_heads = json_require_int(j, "num_attention_heads");
  c.n_kv_heads = json_get<int64_t>(j, "num_key_value_heads", c.n_heads);
  c.ffn_dim = json_require_int(j, "intermediate_size");
  c.vocab_size = json_require_int(j, "vocab_size");
  c.context_length = json_get<int64_t>(j, "max_position_embeddings", 2048);
  c.norm_eps = json_get<float>(j, "rms_norm_eps", 1e-6f);
  if (c.n_heads <= 0) fail(ErrorKind::format, "config.json: num_attention_heads must be positive, found {}", c.n_heads);
  c.head_dim = json_get<int64_t>(j, "head_dim", c.dim / c.n_heads);
  if (c.arch == "llama" && json_get<bool>(j, "attention_bias", false)) {
    fail(ErrorKind::unsupported, "config.json: attention_bias true is not supported for {}", model_type);
  }
  if (json_get<bool>(j, "mlp_bias", false)) fail(ErrorKind::unsupported, "config.json: mlp_bias true is not supported");
  if (c.arch == "qwen2" || c.arch == "qwen3") c.qkv_bias = c.arch == "qwen2" || json_get<bool>(j, "attention_bias", false);
  c.tied_output = json_get<bool>(j, "tie_word_embeddings", false);
  // transformers 4 writes rope_theta and rope_scaling; transformers 5 writes rope_parameters with both.
  const nlohmann::json* rope_parameters = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) rope_parameters = &*it;
  c.rope_theta = rope_parameters ? json_get<float>(*rope_parameters, "rope_theta", json_get<float>(j, "rope_theta", 10000.0f))
                                 : json_get<float>(j, "rope_theta", 10000.0f);
  c.rope_dim = c.head_dim;
  c.rope_style = RopeStyle::neox;
  const bool uses_window = model_type == "mistral" || json_get<bool>(j, "use_sliding_window", model_type != "qwen2" && model_type != "qwen3");
  if (uses_window) c.sliding_window = json_get<int64_t>(j, "sliding_window", 0);
  if (c.sliding_window < 0) fail(ErrorKind::format, "config.json: sliding_window must be >= 0, found {}", c.sliding_window);

  const nlohmann::json* scaling = rope_parameters;
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) scaling = &*it;
  if (scaling) {
    const auto& rs = *scaling;
    std::string type = json_get<std::string>(rs, "rope_type", json_get<std::string>(rs, "type", ""));
    if (type == "llama3") {
      c.rope_scaling = RopeScaling::llama3;
      c.rope_factor = json_get<float>(rs, "factor", 8.0f);
      c.rope_low_freq_factor = json_get<float>(rs, "low_freq_factor", 1.0f);
      c.rope_high_freq_factor = json_get<float>(rs, "high_freq_factor", 4.0f);
      c.rope_original_context = json_get<int64_t>(rs, "original_max_position_embeddings", 8192);
      c.rope_freq_factors = llama3_freq_factors(c.rope_dim, c.rope_theta, c.rope_factor, c.rope_low_freq_factor,
                                                c.rope_high_freq_factor, c.rope_original_context);
    } else if (type == "linear") {
      c.rope_scaling = RopeScaling::linear;
      c.rope_factor = json_get<float>(rs, "factor", 1.0f);
    } else if (type == "default" || type.empty()) {
      // no scaling
    } else {
      fail(ErrorKind::unsupported, "config.json: rope_scaling type '{}' is not supported (supported: llama3, linear)", type);
    }
  }
  c.validate();
  return c;
}

ModelConfig ModelConfig::from_hf_folder(const std::string& folder) {
  const auto path = std::filesystem::path(folder) / "config.json";
  std::ifstream in(path);
  if (!in) fail(ErrorKind::not_found, "cannot open '{}': a Hugging Face model folder needs config.json", path.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, "'{}' is not valid JSON: {}", path.string(), e.what());
  }
  return from_hf_json(j, std::filesystem::path(folder).filename().string());
}

ModelConfig ModelConfig::from_gguf(const gguf::File& file) {
  ModelConfig c;
  auto arch = file.get_string("general.architecture");
  if (!arch) fail(ErrorKind::format, "GGUF '{}': missing general.architecture", file.path());
  c.arch = *arch;
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "qwen3") {
    fail(ErrorKind::unsupported, "GGUF architecture '{}' is not supported; supported: llama, qwen2, qwen3", c.arch);
  }
  c.name = file.get_string("general.name").value_or("");
  const std::string p = c.arch + ".";
  auto require = [&](const std::string& key) -> int64_t {
    auto v = file.get_int(key);
    if (!v) fail(ErrorKind::format, "GGUF: missing required key '{}'", key);
    return *v;
  };
  c.dim = require(p + "embedding_length");
  c.n_layers = require(p + "block_count");
  c.n_heads = require(p + "attention.head_count");
  c.n_kv_heads = file.get_int(p + "attention.head_count_kv").value_or(c.n_heads);
  c.ffn_dim = require(p + "feed_forward_length");
  c.context_length = file.get_int(p + "context_length").value_or(2048);
  c.norm_eps = float(file.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  if (c.n_heads <= 0) fail(ErrorKind::format, "GGUF: {}attention.head_count must be positive, found {}", p, c.n_heads);
  c.head_dim = file.get_int(p + "attention.key_length").value_or(c.dim / c.n_heads);
  const int64_t value_length = file.get_int(p + "attention.value_length").value_or(c.head_dim);
  if (value_length != c.head_dim) {
    fail(ErrorKind::unsupported, "GGUF: attention.value_length {} differs from key_length {}", value_length, c.head_dim);
  }
  c.rope_theta = float(file.get_float(p + "rope.freq_base").value_or(10000.0));
  c.rope_dim = file.get_int(p + "rope.dimension_count").value_or(c.head_dim);
  c.sliding_window = file.get_int(p + "attention.sliding_window").value_or(0);
  c.rope_style = c.arch == "llama" ? RopeStyle::interleaved : RopeStyle::neox;
  c.qk_norm = c.arch == "qwen3";
  c.qkv_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;

  if (auto type = file.get_string(p + "rope.scaling.type")) {
    if (*type == "linear") {
      c.rope_scaling = RopeScaling::linear;
      c.rope_factor = float(file.get_float(p + "rope.scaling.factor").value_or(1.0));
    } else if (*type != "none") {
      fail(ErrorKind::unsupported, "GGUF: rope scaling type '{}' is not supported", *type);
    }
  }
  if (const auto* freqs = file.find_tensor("rope_freqs.weight")) {
    if (freqs->type != DType::F32 || freqs->n_elements() != uint64_t(c.rope_dim / 2)) {
      fail(ErrorKind::format, "GGUF: rope_freqs.weight: expected f32 with {} elements, found {} with {}",
           c.rope_dim / 2, dtype_name(freqs->type), freqs->n_elements());
    }
    const auto* data = reinterpret_cast<const float*>(file.tensor_data(*freqs));
    c.rope_freq_factors.assign(data, data + c.rope_dim / 2);
    c.rope_scaling = RopeScaling::llama3;
  }
  if (const auto* embd = file.find_tensor("token_embd.weight"); embd && embd->dims.size() == 2) {
    c.vocab_size = int64_t(embd->dims[1]);
  }
  if (auto v = file.get_int(p + "vocab_size")) c.vocab_size = *v;
  if (c.vocab_size == 0) {
    if (const auto* tokens = file.find("tokenizer.ggml.tokens")) c.vocab_size = int64_t(tokens->as_array().items.size());
  }
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  c.validate();
  return c;
}

void ModelConfig::validate() const {
  auto positive = [](const char* what, int64_t v) {
    if (v <= 0) fail(ErrorKind::format, "model config: {} must be positive, found {}", what, v);
  };
  positive("dim", dim);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("head_dim", head_dim);
  positive("ffn_dim", ffn_dim);
  positive("vocab_size", vocab_size);
  if (n_heads % n_kv_heads != 0) {
    fail(ErrorKind::format, "model config: n_heads ({}) must be a multiple of n_kv_heads ({})", n_heads, n_kv_heads);
  }
  if (rope_dim <= 0 || rope_dim > head_dim || rope_dim % 2 != 0) {
    fail(ErrorKind::format, "model config: rope_dim must be even and in (0, head_dim={}], found {}", head_dim, rope_dim);
  }
  if (!rope_freq_factors.empty() && int64_t(rope_freq_factors.size()) != rope_dim / 2) {
    fail(ErrorKind::format, "model config: expected {} rope frequency factors, found {}", rope_dim / 2,
         rope_freq_factors.size());
  }
  if (n_layers > 4096 || dim > (1 << 20) || head_dim > 4096 || vocab_size > (1 << 24)) {
    fail(ErrorKind::format, "model config: implausible sizes (layers {}, dim {}, head_dim {}, vocab {})", n_layers, dim,
         head_dim, vocab_size);
  }
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  std::vector<float> inv(static_cast<size_t>(rope_dim / 2));
  for (int64_t i = 0; i < rope_dim / 2; ++i) {
    // As transformers computes it: theta^(-(2i)/d) in float32.
    float f = 1.0f / std::pow(rope_theta, float(2 * i) / float(rope_dim));
    if (!rope_freq_factors.empty()) f /= rope_freq_factors[size_t(i)];
    if (rope_scaling == RopeScaling::linear) f /= rope_factor;
    inv[size_t(i)] = f;
  }
  return inv;
}

}  // namespace slm
