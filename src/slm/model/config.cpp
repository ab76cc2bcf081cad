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

namespace {

std::vector<float> json_float_list(const nlohmann::json& j, const char* key, size_t expected) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != expected) {
    fail(ErrorKind::format, "config.json: expected '{}' as a list of {} numbers, found {}", key, expected,
         it == j.end() ? "nothing" : (it->is_array() ? fmt::format("{} values", it->size()) : it->type_name()));
  }
  std::vector<float> out;
  for (const auto& v : *it) {
    if (!v.is_number()) fail(ErrorKind::format, "config.json: '{}' holds a {}, expected numbers", key, v.type_name());
    out.push_back(v.get<float>());
  }
  return out;
}

// Gemma 3: local (sliding) and global layers, separate RoPE bases, pre/post norms, GELU-tanh.
void read_gemma3(const nlohmann::json& j, ModelConfig& c) {
  c.qk_norm = true;
  c.post_norms = true;
  c.norm_weight_offset = true;
  c.activation = Activation::gelu_tanh;
  c.embedding_scale = std::sqrt(float(c.dim));
  c.attention_scale = 1.0f / std::sqrt(json_get<float>(j, "query_pre_attn_scalar", float(c.head_dim)));
  const std::string act = json_get<std::string>(j, "hidden_activation", "gelu_pytorch_tanh");
  if (act != "gelu_pytorch_tanh" && act != "gelu_tanh") {
    fail(ErrorKind::unsupported, "config.json: hidden_activation '{}' is not supported for gemma3 (gelu_pytorch_tanh)", act);
  }
  for (const char* cap : {"final_logit_softcapping", "attn_logit_softcapping"}) {
    if (json_get<float>(j, cap, 0.0f) != 0.0f) fail(ErrorKind::unsupported, "config.json: {} is not supported", cap);
  }
  c.sliding_window = json_get<int64_t>(j, "sliding_window", 0);
  if (auto it = j.find("layer_types"); it != j.end() && it->is_array()) {
    if (int64_t(it->size()) != c.n_layers) {
      fail(ErrorKind::format, "config.json: layer_types has {} entries, expected num_hidden_layers = {}", it->size(), c.n_layers);
    }
    for (const auto& t : *it) {
      const std::string kind = t.is_string() ? t.get<std::string>() : "";
      if (kind != "sliding_attention" && kind != "full_attention") {
        fail(ErrorKind::format, "config.json: layer_types entries must be sliding_attention or full_attention, found {}", t.dump());
      }
      c.layer_sliding.push_back(kind == "sliding_attention");
    }
  } else {
    const int64_t pattern = json_get<int64_t>(j, "sliding_window_pattern", 6);
    if (pattern <= 0) fail(ErrorKind::format, "config.json: sliding_window_pattern must be positive, found {}", pattern);
    for (int64_t l = 0; l < c.n_layers; ++l) c.layer_sliding.push_back((l + 1) % pattern != 0);
  }
  // transformers 5: rope_parameters per layer type; transformers 4: rope_theta, rope_local_base_freq, rope_scaling.
  const nlohmann::json* rp = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object() && it->contains("full_attention")) rp = &*it;
  const nlohmann::json* global = rp ? &rp->at("full_attention") : nullptr;
  const nlohmann::json* local = rp && rp->contains("sliding_attention") ? &rp->at("sliding_attention") : nullptr;
  c.rope_theta = global ? json_get<float>(*global, "rope_theta", 1000000.0f) : json_get<float>(j, "rope_theta", 1000000.0f);
  c.rope_theta_local = local ? json_get<float>(*local, "rope_theta", 10000.0f) : json_get<float>(j, "rope_local_base_freq", 10000.0f);
  if (local && json_get<std::string>(*local, "rope_type", "default") != "default") {
    fail(ErrorKind::unsupported, "config.json: RoPE scaling on sliding layers is not supported");
  }
  const nlohmann::json* scaling = global;
  if (!scaling) {
    if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) scaling = &*it;
  }
  if (scaling) {
    const std::string type = json_get<std::string>(*scaling, "rope_type", json_get<std::string>(*scaling, "type", "default"));
    if (type == "linear") {
      c.rope_scaling = RopeScaling::linear;
      c.rope_factor = json_get<float>(*scaling, "factor", 1.0f);
    } else if (type != "default") {
      fail(ErrorKind::unsupported, "config.json: gemma3 rope type '{}' is not supported (default, linear)", type);
    }
  }
}

// Phi-3.5 / Phi-4-mini: LongRoPE with short and long factors, partial rotary.
void read_phi3(const nlohmann::json& j, ModelConfig& c) {
  const nlohmann::json* rp = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) rp = &*it;
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) rp = &*it;
  const float partial = rp ? json_get<float>(*rp, "partial_rotary_factor", json_get<float>(j, "partial_rotary_factor", 1.0f))
                           : json_get<float>(j, "partial_rotary_factor", 1.0f);
  c.rope_dim = int64_t(float(c.head_dim) * partial);
  c.rope_theta = rp ? json_get<float>(*rp, "rope_theta", json_get<float>(j, "rope_theta", 10000.0f))
                    : json_get<float>(j, "rope_theta", 10000.0f);
  const std::string type = rp ? json_get<std::string>(*rp, "rope_type", json_get<std::string>(*rp, "type", "default")) : "default";
  if (type == "longrope" || type == "su") {
    c.rope_scaling = RopeScaling::longrope;
    c.rope_original_context = rp->contains("original_max_position_embeddings")
                                  ? json_get<int64_t>(*rp, "original_max_position_embeddings", 0)
                                  : json_get<int64_t>(j, "original_max_position_embeddings", 0);
    if (c.rope_original_context <= 0) {
      fail(ErrorKind::format, "config.json: longrope needs original_max_position_embeddings > 0");
    }
    c.rope_short_factors = json_float_list(*rp, "short_factor", size_t(c.rope_dim / 2));
    c.rope_long_factors = json_float_list(*rp, "long_factor", size_t(c.rope_dim / 2));
    const double factor = double(c.context_length) / double(c.rope_original_context);
    const double computed =
        factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(factor) / std::log(double(c.rope_original_context)));
    c.rope_attention_factor = json_get<float>(*rp, "attention_factor", float(computed));
  } else if (type != "default") {
    fail(ErrorKind::unsupported, "config.json: phi3 rope type '{}' is not supported (default, longrope)", type);
  }
  c.sliding_window = json_get<int64_t>(j, "sliding_window", 0);
  // llama.cpp ignores Phi-3's sliding_window (its attention is full in practice for these sizes); so does slm.
  c.sliding_window = 0;
}

}  // namespace

float ModelConfig::attention_scale_or_default() const {
  return attention_scale > 0.0f ? attention_scale : 1.0f / std::sqrt(float(head_dim));
}

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& top, const std::string& name) {
  if (!top.is_object()) fail(ErrorKind::format, "config.json: expected an object at the top level");
  // Multimodal Gemma 3 checkpoints (gemma-3-4b and up) hold the text tower's settings in text_config.
  const nlohmann::json& j =
      top.contains("text_config") && top["text_config"].is_object() && json_get<std::string>(top, "model_type", "") == "gemma3"
          ? top["text_config"]
          : top;
  ModelConfig c;
  c.name = name;
  std::string model_type = json_get<std::string>(j, "model_type", json_get<std::string>(top, "model_type", ""));
  if (&j != &top) model_type = "gemma3_text";
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
  } else if (model_type == "gemma3_text" || model_type == "gemma3") {
    c.arch = "gemma3";
  } else if (model_type == "phi3") {
    c.arch = "phi3";
  } else {
    fail(ErrorKind::unsupported,
         "config.json: model_type '{}' ({}) is not supported; supported: llama, mistral, qwen2, qwen3, gemma3, phi3",
         model_type,
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

  if (c.arch == "gemma3" || c.arch == "phi3") {
    if (c.arch == "gemma3") read_gemma3(j, c);
    if (c.arch == "phi3") read_phi3(j, c);
    c.validate();
    return c;
  }
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
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "qwen3" && c.arch != "gemma3" && c.arch != "phi3") {
    fail(ErrorKind::unsupported, "GGUF architecture '{}' is not supported; supported: llama, qwen2, qwen3, gemma3, phi3",
         c.arch);
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
  c.qk_norm = c.arch == "qwen3" || c.arch == "gemma3";
  if (c.arch == "gemma3") {
    // As llama.cpp reads them: sliding layers in a period (default 6, the last of each period
    // global), their own RoPE base (default 10000), scores scaled by 1/sqrt(head_dim) unless
    // attention.scale says otherwise; norm weights already hold 1 + w.
    c.post_norms = true;
    c.activation = Activation::gelu_tanh;
    c.embedding_scale = std::sqrt(float(c.dim));
    c.attention_scale = float(file.get_float(p + "attention.scale").value_or(0.0));
    c.rope_theta_local = float(file.get_float(p + "rope.freq_base_swa").value_or(10000.0));
    if (c.sliding_window > 0) {
      const int64_t period = file.get_int(p + "attention.sliding_window_pattern").value_or(6);
      if (period <= 0) fail(ErrorKind::format, "GGUF: {}attention.sliding_window_pattern must be positive, found {}", p, period);
      for (int64_t l = 0; l < c.n_layers; ++l) c.layer_sliding.push_back(l % period < period - 1);
    }
    if (file.get_float(p + "final_logit_softcapping").value_or(0.0) != 0.0) {
      fail(ErrorKind::unsupported, "GGUF: {}final_logit_softcapping is not supported", p);
    }
  }
  if (c.arch == "phi3") {
    c.sliding_window = 0;  // as llama.cpp: Phi-3's window is not applied
    c.rope_original_context = file.get_int(p + "rope.scaling.original_context_length").value_or(0);
    c.rope_attention_factor = float(file.get_float(p + "rope.scaling.attn_factor").value_or(1.0));
    auto factors = [&](const char* tensor) {
      std::vector<float> out;
      const auto* t = file.find_tensor(tensor);
      if (!t) return out;
      if (t->type != DType::F32 || t->n_elements() != uint64_t(c.rope_dim / 2)) {
        fail(ErrorKind::format, "GGUF: {}: expected f32 with {} elements, found {} with {}", tensor, c.rope_dim / 2,
             dtype_name(t->type), t->n_elements());
      }
      const auto* data = reinterpret_cast<const float*>(file.tensor_data(*t));
      out.assign(data, data + c.rope_dim / 2);
      return out;
    };
    c.rope_long_factors = factors("rope_factors_long.weight");
    c.rope_short_factors = factors("rope_factors_short.weight");
    if (!c.rope_long_factors.empty() || !c.rope_short_factors.empty()) {
      if (c.rope_long_factors.empty() || c.rope_short_factors.empty() || c.rope_original_context <= 0) {
        fail(ErrorKind::format, "GGUF: LongRoPE needs rope_factors_long, rope_factors_short and {}rope.scaling.original_context_length", p);
      }
      c.rope_scaling = RopeScaling::longrope;
    }
  }
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
  if (!layer_sliding.empty() && int64_t(layer_sliding.size()) != n_layers) {
    fail(ErrorKind::format, "model config: {} layer kinds for {} layers", layer_sliding.size(), n_layers);
  }
  if (rope_scaling == RopeScaling::longrope &&
      (int64_t(rope_short_factors.size()) != rope_dim / 2 || int64_t(rope_long_factors.size()) != rope_dim / 2)) {
    fail(ErrorKind::format, "model config: LongRoPE needs {} short and long factors, found {} and {}", rope_dim / 2,
         rope_short_factors.size(), rope_long_factors.size());
  }
  if (n_layers > 4096 || dim > (1 << 20) || head_dim > 4096 || vocab_size > (1 << 24)) {
    fail(ErrorKind::format, "model config: implausible sizes (layers {}, dim {}, head_dim {}, vocab {})", n_layers, dim,
         head_dim, vocab_size);
  }
}

std::vector<float> ModelConfig::rope_inv_freq(bool sliding_layer, int64_t n_ctx) const {
  std::vector<float> inv(static_cast<size_t>(rope_dim / 2));
  const bool local = sliding_layer && rope_theta_local > 0.0f;
  const float theta = local ? rope_theta_local : rope_theta;
  const std::vector<float>* longrope = nullptr;
  if (rope_scaling == RopeScaling::longrope && !local) {
    longrope = n_ctx > rope_original_context ? &rope_long_factors : &rope_short_factors;
  }
  for (int64_t i = 0; i < rope_dim / 2; ++i) {
    // As transformers computes it: theta^(-(2i)/d) in float32.
    float f = 1.0f / std::pow(theta, float(2 * i) / float(rope_dim));
    if (!local) {
      if (!rope_freq_factors.empty()) f /= rope_freq_factors[size_t(i)];
      if (rope_scaling == RopeScaling::linear) f /= rope_factor;
      if (longrope) f /= (*longrope)[size_t(i)];
    }
    inv[size_t(i)] = f;
  }
  return inv;
}

}  // namespace slm
