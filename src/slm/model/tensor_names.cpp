#include "slm/model/tensor_names.hpp"

#include <array>
#include <charconv>
#include <utility>

namespace slm {

std::optional<std::string> hf_to_gguf_name(std::string_view name, std::string_view arch) {
  // A multimodal Gemma 3 checkpoint's text tower: "language_model.model.*" (transformers 4) or
  // "model.language_model.*" (transformers 5).
  std::string normalized;
  for (std::string_view prefix : {"language_model.model.", "model.language_model."}) {
    if (name.starts_with(prefix)) {
      normalized = "model." + std::string(name.substr(prefix.size()));
      name = normalized;
      break;
    }
  }
  if (name == "language_model.lm_head.weight") name = "lm_head.weight";
  // A base model saved without its LM head (Qwen3-Embedding: Qwen3Model) has no "model." prefix.
  if (name.starts_with("layers.") || name == "embed_tokens.weight" || name == "norm.weight") {
    normalized = "model." + std::string(name);
    name = normalized;
  }
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 3> globals{{
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  }};
  for (const auto& [hf, gg] : globals) {
    if (name == hf) return std::string(gg);
  }
  constexpr std::string_view layer_prefix = "model.layers.";
  if (!name.starts_with(layer_prefix)) return std::nullopt;
  std::string_view rest = name.substr(layer_prefix.size());
  const auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  int layer = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + dot, layer);
  if (ec != std::errc() || end != rest.data() + dot || layer < 0) return std::nullopt;
  const std::string_view leaf = rest.substr(dot + 1);
  const std::string blk = "blk." + std::to_string(layer) + ".";
  if (arch == "gemma3") {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 3> gemma{{
        {"post_attention_layernorm.weight", "post_attention_norm.weight"},
        {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
        {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
    }};
    for (const auto& [hf, gg] : gemma) {
      if (leaf == hf) return blk + std::string(gg);
    }
  }
  if (arch == "phi3") {
    if (leaf == "self_attn.qkv_proj.weight") return blk + "attn_qkv.weight";
    if (leaf == "mlp.gate_up_proj.weight") return blk + "ffn_up.weight";  // gate rows first, then up
  }
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 17> per_layer{{
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.bias", "attn_output.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"self_attn.rotary_emb.inv_freq", ""},
      {"mlp.gate_up_proj.weight", ""},
  }};
  for (const auto& [hf, gg] : per_layer) {
    if (leaf == hf) {
      if (gg.empty()) return std::nullopt;
      return "blk." + std::to_string(layer) + "." + std::string(gg);
    }
  }
  return std::nullopt;
}

}  // namespace slm
