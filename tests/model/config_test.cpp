#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "slm/model/config.hpp"
#include "slm/model/tensor_names.hpp"
#include "slm/util/error.hpp"

using namespace slm;

namespace {

nlohmann::json llama_json() {
  return nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
    "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
}

TEST(ModelConfig, Llama32FromHfJson) {
  const auto c = ModelConfig::from_hf_json(llama_json());
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.dim, 2048);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(c.rope_scaling, RopeScaling::llama3);
  ASSERT_EQ(c.rope_freq_factors.size(), 32u);
  // Highest frequencies (short wavelengths) are untouched, the lowest are divided by the factor,
  // and the ones between are blended monotonically.
  EXPECT_FLOAT_EQ(c.rope_freq_factors.front(), 1.0f);
  EXPECT_FLOAT_EQ(c.rope_freq_factors.back(), 32.0f);
  for (size_t i = 1; i < c.rope_freq_factors.size(); ++i) EXPECT_GE(c.rope_freq_factors[i], c.rope_freq_factors[i - 1]);
  const auto inv = c.rope_inv_freq();
  EXPECT_NEAR(inv[0], 1.0, 1e-7);
  EXPECT_NEAR(inv[31], std::pow(500000.0, -62.0 / 64.0) / 32.0, 1e-12);
}

TEST(ModelConfig, Qwen3HeadDimIndependentOfDim) {
  auto j = nlohmann::json::parse(R"({"model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "rope_theta": 1000000, "tie_word_embeddings": true, "rms_norm_eps": 1e-6})");
  const auto c = ModelConfig::from_hf_json(j);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_EQ(c.kv_dim(), 1024);
}

TEST(ModelConfig, Qwen2HasBiasAndIgnoresWindowUnlessEnabled) {
  auto j = nlohmann::json::parse(R"({"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "sliding_window": 32768, "use_sliding_window": false, "rope_theta": 1000000.0})");
  const auto c = ModelConfig::from_hf_json(j);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(ModelConfig, MistralSlidingWindow) {
  auto j = nlohmann::json::parse(R"({"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
    "sliding_window": 4096})");
  const auto c = ModelConfig::from_hf_json(j);
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.sliding_window, 4096);
}

TEST(ModelConfig, ErrorsNameTheProblem) {
  auto j = llama_json();
  j["model_type"] = "gpt_neox";
  try {
    ModelConfig::from_hf_json(j);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("gpt_neox"), std::string::npos);
  }
  j = llama_json();
  j.erase("hidden_size");
  EXPECT_THROW(ModelConfig::from_hf_json(j), Error);
  j = llama_json();
  j["num_key_value_heads"] = 5;  // 32 % 5 != 0
  EXPECT_THROW(ModelConfig::from_hf_json(j), Error);
  j = llama_json();
  j["hidden_size"] = "big";
  EXPECT_THROW(ModelConfig::from_hf_json(j), Error);
  j = llama_json();
  j["rope_scaling"]["rope_type"] = "yarn";
  EXPECT_THROW(ModelConfig::from_hf_json(j), Error);
}

TEST(TensorNames, HuggingFaceToGguf) {
  EXPECT_EQ(hf_to_gguf_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(hf_to_gguf_name("lm_head.weight"), "output.weight");
  EXPECT_EQ(hf_to_gguf_name("model.layers.12.self_attn.k_proj.bias"), "blk.12.attn_k.bias");
  EXPECT_EQ(hf_to_gguf_name("model.layers.0.mlp.down_proj.weight"), "blk.0.ffn_down.weight");
  EXPECT_EQ(hf_to_gguf_name("model.layers.3.self_attn.q_norm.weight"), "blk.3.attn_q_norm.weight");
  EXPECT_FALSE(hf_to_gguf_name("model.layers.x.mlp.down_proj.weight").has_value());
  EXPECT_FALSE(hf_to_gguf_name("model.layers.1.self_attn.rotary_emb.inv_freq").has_value());
  EXPECT_FALSE(hf_to_gguf_name("vision_tower.weight").has_value());
}

}  // namespace

namespace {
TEST(ModelConfig, Transformers5RopeParameters) {
  auto j = nlohmann::json::parse(R"({"model_type": "llama", "hidden_size": 128, "intermediate_size": 256,
    "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 512,
    "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  const auto c = ModelConfig::from_hf_json(j);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling, RopeScaling::llama3);
  j["rope_parameters"] = nlohmann::json::parse(R"({"rope_theta": 1000000.0, "rope_type": "default"})");
  const auto d = ModelConfig::from_hf_json(j);
  EXPECT_FLOAT_EQ(d.rope_theta, 1000000.0f);
  EXPECT_EQ(d.rope_scaling, RopeScaling::none);
}
}  // namespace

namespace {
// Gemma 3 4B and up are multimodal checkpoints: the text tower's settings sit in text_config and
// its tensors under language_model; the vision tower is left out.
TEST(ModelConfig, Gemma3MultimodalTextTower) {
  auto j = nlohmann::json::parse(R"({"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
    "vision_config": {"hidden_size": 1152},
    "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
      "num_hidden_layers": 12, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
      "vocab_size": 262208, "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
      "query_pre_attn_scalar": 256, "sliding_window": 1024, "sliding_window_pattern": 6,
      "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
      "rope_scaling": {"rope_type": "linear", "factor": 8.0}}})");
  const auto c = ModelConfig::from_hf_json(j);
  EXPECT_EQ(c.arch, "gemma3");
  EXPECT_EQ(c.dim, 2560);
  EXPECT_EQ(c.n_layers, 12);
  EXPECT_TRUE(c.post_norms && c.qk_norm && c.norm_weight_offset);
  EXPECT_EQ(c.activation, Activation::gelu_tanh);
  EXPECT_FLOAT_EQ(c.embedding_scale, std::sqrt(2560.0f));
  EXPECT_FLOAT_EQ(c.attention_scale_or_default(), 1.0f / 16.0f);
  // transformers 4's pattern: five sliding layers, then a global one.
  for (int64_t l = 0; l < 12; ++l) EXPECT_EQ(c.layer_uses_window(l), (l + 1) % 6 != 0) << l;
  EXPECT_EQ(c.rope_scaling, RopeScaling::linear);
  EXPECT_FLOAT_EQ(c.rope_factor, 8.0f);
  const auto global = c.rope_inv_freq(false, 4096), local = c.rope_inv_freq(true, 4096);
  EXPECT_FLOAT_EQ(global[1], 1.0f / std::pow(1000000.0f, 2.0f / 256.0f) / 8.0f);
  EXPECT_FLOAT_EQ(local[1], 1.0f / std::pow(10000.0f, 2.0f / 256.0f));

  EXPECT_EQ(hf_to_gguf_name("language_model.model.layers.0.post_feedforward_layernorm.weight", "gemma3"),
            "blk.0.post_ffw_norm.weight");
  EXPECT_EQ(hf_to_gguf_name("model.language_model.layers.1.pre_feedforward_layernorm.weight", "gemma3"),
            "blk.1.ffn_norm.weight");
  EXPECT_EQ(hf_to_gguf_name("model.language_model.layers.1.post_attention_layernorm.weight", "gemma3"),
            "blk.1.post_attention_norm.weight");
  EXPECT_EQ(hf_to_gguf_name("language_model.model.embed_tokens.weight", "gemma3"), "token_embd.weight");
  EXPECT_FALSE(hf_to_gguf_name("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight", "gemma3").has_value());
  // For Llama the same HF name is the pre-MLP norm.
  EXPECT_EQ(hf_to_gguf_name("model.layers.1.post_attention_layernorm.weight", "llama"), "blk.1.ffn_norm.weight");
}

TEST(ModelConfig, Phi3LongRopePicksFactorsByContext) {
  auto j = nlohmann::json::parse(R"({"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
    "num_hidden_layers": 2, "num_attention_heads": 24, "num_key_value_heads": 8, "vocab_size": 200064,
    "max_position_embeddings": 131072, "original_max_position_embeddings": 4096, "partial_rotary_factor": 0.75,
    "rope_theta": 10000.0, "rope_scaling": {"type": "longrope"}})");
  std::vector<float> short_f(48, 1.0f), long_f(48, 4.0f);
  j["rope_scaling"]["short_factor"] = short_f;
  j["rope_scaling"]["long_factor"] = long_f;
  const auto c = ModelConfig::from_hf_json(j);
  EXPECT_EQ(c.rope_dim, 96);
  EXPECT_EQ(c.rope_scaling, RopeScaling::longrope);
  EXPECT_NEAR(c.rope_attention_factor, std::sqrt(1.0 + std::log(32.0) / std::log(4096.0)), 1e-6);
  EXPECT_FLOAT_EQ(c.rope_inv_freq(false, 4096)[3] / c.rope_inv_freq(false, 8192)[3], 4.0f);
  j["rope_scaling"]["long_factor"] = std::vector<float>(47, 4.0f);
  EXPECT_THROW(ModelConfig::from_hf_json(j), Error);
}
}  // namespace
