// slm convert HF_FOLDER -o FILE.gguf [--outtype f32|f16|bf16|q8_0|q4_k_m|...]
#include <fmt/format.h>

#include <iostream>

#include "common.hpp"
#include "slm/model/convert.hpp"
#include "slm/model/quantize.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct ConvertArgs {
  std::string folder;
  std::string out;
  std::string outtype = "f16";
};
}  // namespace

Command add_convert(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a Hugging Face folder to GGUF (llama.cpp names and keys)");
  cmd->add_option("folder", args->folder, "Hugging Face model folder")->required();
  cmd->add_option("-o,--output", args->out, "Output .gguf file")->required();
  cmd->add_option("--outtype", args->outtype, "f32, f16, bf16, or a quantization recipe: " + quant_recipe_names())
      ->capture_default_str();
  return {cmd, [args]() {
            ConvertOptions options;
            if (!quant_recipe(args->outtype)) {
              fail(ErrorKind::invalid_argument, "--outtype: expected one of {}, found '{}'", quant_recipe_names(),
                   args->outtype);
            }
            options.recipe = args->outtype;
            const auto report = convert_hf_to_gguf(resolve_model_path(args->folder), args->out, options);
            std::cerr << fmt::format("wrote {}: {} tensors, {:.1f} MiB of data, {}\n", args->out, report.n_tensors,
                                     double(report.bytes) / (1 << 20),
                                     report.has_tokenizer ? "with tokenizer" : "no tokenizer (tokenizer.json missing)");
            return 0;
          }};
}

}  // namespace slm::cli
