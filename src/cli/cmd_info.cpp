// slm info MODEL: architecture, shapes, tensor types, metadata, tokenizer and special tokens.
#include <fmt/format.h>

#include <iostream>
#include <map>

#include "common.hpp"
#include "slm/format/gguf.hpp"

namespace slm::cli {
namespace {
struct InfoArgs {
  std::string model;
  bool tensors = false;
  bool metadata = false;
};

const char* rope_style_name(RopeStyle s) { return s == RopeStyle::interleaved ? "interleaved" : "neox"; }
const char* rope_scaling_name(RopeScaling s) {
  switch (s) {
    case RopeScaling::none: return "none";
    case RopeScaling::linear: return "linear";
    case RopeScaling::llama3: return "llama3";
    case RopeScaling::longrope: return "longrope";
  }
  return "?";
}
std::string token_label(const Tokenizer& tok, int32_t id) {
  if (id < 0) return "none";
  return fmt::format("{} {}", id, tok.token_bytes(id));
}
}  // namespace

Command add_info(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model: architecture, shapes, tensors, metadata, tokenizer");
  cmd->add_option("model", args->model, "GGUF file, Hugging Face folder or store name (default: the demo model)");
  cmd->add_flag("--tensors", args->tensors, "List every tensor");
  cmd->add_flag("--metadata", args->metadata, "List every metadata key (GGUF)");
  return {cmd, [args]() {
            auto model = load_model(args->model);
            const ModelConfig& c = model->config();
            std::cout << fmt::format("model:          {}\n", model->path());
            std::cout << fmt::format("format:         {}\n", model->format());
            std::cout << fmt::format("name:           {}\n", c.name);
            std::cout << fmt::format("architecture:   {}{}\n", c.arch, c.hf_arch.empty() ? "" : " (" + c.hf_arch + ")");
            std::cout << fmt::format("dim:            {}\nlayers:         {}\nheads:          {} (kv {}, head_dim {})\n",
                                     c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim);
            std::cout << fmt::format("ffn_dim:        {}\nvocab_size:     {}\ncontext_length: {}\nnorm_eps:       {}\n",
                                     c.ffn_dim, c.vocab_size, c.context_length, c.norm_eps);
            std::cout << fmt::format("rope:           theta {}, dims {}, {}, scaling {}{}\n", c.rope_theta, c.rope_dim,
                                     rope_style_name(c.rope_style), rope_scaling_name(c.rope_scaling),
                                     c.rope_scaling == RopeScaling::none ? "" : fmt::format(" (factor {})", c.rope_factor));
            std::cout << fmt::format("traits:         qkv_bias {}, qk_norm {}, sliding_window {}, tied_output {}\n",
                                     c.qkv_bias, c.qk_norm, c.sliding_window, c.tied_output);
            std::map<std::string, std::pair<size_t, size_t>> by_type;
            for (const auto& t : model->tensors()) {
              auto& e = by_type[std::string(dtype_name(t.type))];
              ++e.first;
              e.second += t.bytes;
            }
            std::cout << fmt::format("tensors:        {} ({:.1f} MiB)", model->tensors().size(),
                                     double(model->total_weight_bytes()) / (1 << 20));
            for (const auto& [type, e] : by_type) std::cout << fmt::format("  {}: {}", type, e.first);
            std::cout << "\n";
            if (args->tensors) {
              for (const auto& t : model->tensors()) {
                std::string shape;
                for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? " x " : "") + std::to_string(t.shape[i]);
                std::cout << fmt::format("  {:40} {:6} [{}]\n", t.name, dtype_name(t.type), shape);
              }
            }
            if (model->gguf()) {
              std::cout << fmt::format("gguf:           version {}, {} metadata keys, alignment {}\n",
                                       model->gguf()->version(), model->gguf()->metadata().size(), model->gguf()->alignment());
              if (args->metadata) {
                for (const auto& [key, value] : model->gguf()->metadata()) {
                  std::cout << fmt::format("  {} = {}\n", key, value.to_display());
                }
              }
            }
            if (const Tokenizer* tok = model->tokenizer()) {
              const TokenizerData& d = tok->data();
              std::cout << fmt::format("tokenizer:      {} (pre {}), {} tokens, {} merges, add_bos {}, add_eos {}\n", d.model,
                                       d.pre, d.tokens.size(), d.merges.size(), d.add_bos, d.add_eos);
              std::cout << fmt::format("special:        bos [{}], eos [{}], pad [{}]\n", token_label(*tok, d.bos_id),
                                       token_label(*tok, d.eos_id), token_label(*tok, d.pad_id));
              std::string eog;
              for (int32_t id : d.eog_ids) eog += fmt::format("{}[{}]", eog.empty() ? "" : " ", token_label(*tok, id));
              std::cout << fmt::format("end of gen.:    {}\n", eog);
              std::cout << fmt::format("chat template:  {}\n", d.chat_template.empty() ? "none" : fmt::format("{} bytes", d.chat_template.size()));
            } else {
              std::cout << "tokenizer:      none\n";
            }
            return 0;
          }};
}

}  // namespace slm::cli
