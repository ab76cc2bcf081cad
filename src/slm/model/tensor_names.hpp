// Canonical tensor names: the names llama.cpp gives tensors in GGUF files. Hugging Face names map to
// them, so one binding serves both formats.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace slm {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; nullopt for names slm does not
// use (for example rotary inv_freq buffers, a multimodal checkpoint's vision tower). `arch` is the
// GGUF architecture: Gemma 3 names its norms differently, Phi-3 fuses projections.
std::optional<std::string> hf_to_gguf_name(std::string_view hf_name, std::string_view arch = "");

}  // namespace slm
