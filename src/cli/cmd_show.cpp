// slm show NAME: a stored model's manifest (source, commit, files, hashes) and, when slm can load
// it, a summary of the model.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/hub/progress.hpp"
#include "slm/hub/store.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct ShowArgs {
  std::string name;
  bool json = false;
};

hub::Manifest find_stored(const std::string& name) {
  const hub::Store store = hub::Store::from_env();
  auto m = store.find(name);
  if (!m) {
    fail(ErrorKind::not_found, "no model '{}' in the store ({}); see `slm list`, or download it with `slm pull`", name,
         store.root().string());
  }
  return *m;
}
}  // namespace

Command add_show(CLI::App& app) {
  auto args = std::make_shared<ShowArgs>();
  CLI::App* cmd = app.add_subcommand("show", "Describe a model in the store: source, files, hashes, model summary");
  cmd->add_option("name", args->name, "Store name (see `slm list`)")->required();
  cmd->add_flag("--json", args->json, "The manifest as JSON, with the path and the model summary");
  return {cmd, [args]() {
            const hub::Manifest m = find_stored(args->name);
            std::shared_ptr<const Model> model;
            std::string load_error;
            try {
              model = Model::load(m.model_path().string());
            } catch (const Error& e) {
              load_error = e.what();
            }
            if (args->json) {
              auto j = m.to_json();
              j["path"] = m.model_path().string();
              j["size"] = m.total_size();
              if (model) {
                const ModelConfig& c = model->config();
                j["model"] = {{"architecture", c.arch}, {"dim", c.dim},           {"n_layers", c.n_layers},
                              {"n_heads", c.n_heads},   {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
                              {"context_length", c.context_length}, {"tensors", model->tensors().size()},
                              {"tokenizer", model->tokenizer() != nullptr}};
              } else {
                j["model_error"] = load_error;
              }
              std::cout << j.dump(2) << "\n";
              return 0;
            }
            std::cout << fmt::format("name:           {}\n", m.name);
            std::cout << fmt::format("source:         {} {} (revision {}, commit {})\n", m.endpoint, m.repo, m.revision, m.commit);
            std::cout << fmt::format("format:         {}\n", m.format);
            std::cout << fmt::format("quant:          {}\n", m.quant.empty() ? "-" : m.quant);
            std::cout << fmt::format("path:           {}\n", m.model_path().string());
            std::cout << fmt::format("size:           {}\n", hub::human_bytes(m.total_size()));
            std::cout << fmt::format("pulled:         {}\n", m.pulled_at);
            std::cout << fmt::format("files:          {}\n", m.files.size());
            size_t width = 0;
            for (const auto& f : m.files) width = std::max(width, f.path.size());
            for (const auto& f : m.files) {
              std::cout << fmt::format("  {:<{}}  {:>10}  sha256 {}  (checked: {})\n", f.path, width, hub::human_bytes(f.size),
                                       f.sha256, f.verified);
            }
            if (!model) {
              std::cout << fmt::format("model:          not loadable by slm: {}\n", load_error);
              return 0;
            }
            const ModelConfig& c = model->config();
            std::cout << fmt::format("architecture:   {}{}\n", c.arch, c.hf_arch.empty() ? "" : " (" + c.hf_arch + ")");
            std::cout << fmt::format("dim:            {}\nlayers:         {}\nheads:          {} (kv {}, head_dim {})\n", c.dim,
                                     c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim);
            std::cout << fmt::format("vocab_size:     {}\ncontext_length: {}\n", c.vocab_size, c.context_length);
            std::cout << fmt::format("tensors:        {} ({:.1f} MiB)\n", model->tensors().size(),
                                     double(model->total_weight_bytes()) / (1 << 20));
            if (const Tokenizer* tok = model->tokenizer()) {
              std::cout << fmt::format("tokenizer:      {}, {} tokens\n", tok->data().model, tok->data().tokens.size());
            } else {
              std::cout << "tokenizer:      none\n";
            }
            return 0;
          }};
}

}  // namespace slm::cli
