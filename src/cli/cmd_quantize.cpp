// slm quantize IN.gguf OUT.gguf TYPE: a GGUF file with its weights in a quantized format, chosen per
// tensor by the recipe TYPE (llama.cpp's names: Q8_0, Q4_K_M, Q5_K_S, IQ4_XS, ...).
#include <fmt/format.h>

#include <iostream>

#include "common.hpp"
#include "slm/model/quantize.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct QuantizeArgs {
  std::string in;
  std::string out;
  std::string type;
  bool allow_requantize = false;
  int threads = 0;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s;
}

double mib(size_t bytes) { return double(bytes) / (1 << 20); }
}  // namespace

Command add_quantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a GGUF file (Q8_0, Q4_K_M, ... as llama.cpp names them)");
  cmd->add_option("input", args->in, "Input .gguf file (F32, F16 or BF16 weights)")->required();
  cmd->add_option("output", args->out, "Output .gguf file")->required();
  cmd->add_option("type", args->type, "Recipe: " + quant_recipe_names())->required();
  cmd->add_flag("--allow-requantize", args->allow_requantize, "Quantize tensors that are already quantized");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)")->capture_default_str();
  return {cmd, [args]() {
            set_threads(args->threads);
            QuantizeOptions options;
            options.recipe = args->type;
            options.allow_requantize = args->allow_requantize;
            if (!quant_recipe(args->type)) {
              fail(ErrorKind::invalid_argument, "unknown quantization type '{}': expected one of {}", args->type,
                   quant_recipe_names());
            }
            size_t index = 0;
            const auto report = quantize_gguf(args->in, args->out, options, [&](const QuantizedTensor& t) {
              ++index;
              std::cout << fmt::format("[{:4}] {:36} [{:>13}] {:>6} -> {:<6} {:9.3f} MiB -> {:9.3f} MiB{}\n", index,
                                       t.name, shape_text(t.shape), dtype_name(t.from), dtype_name(t.to),
                                       mib(t.bytes_from), mib(t.bytes_to), t.fallback ? "  (fallback: rows are not whole blocks)" : "");
              std::cout.flush();
            });
            const double bpw_from = 8.0 * double(report.bytes_from) / double(std::max<uint64_t>(1, report.n_elements));
            const double bpw_to = 8.0 * double(report.bytes_to) / double(std::max<uint64_t>(1, report.n_elements));
            std::cout << fmt::format("total: {} tensors, {:.2f} MiB ({:.2f} bits per weight) -> {:.2f} MiB ({:.2f} bits per weight)\n",
                                     report.tensors.size(), mib(report.bytes_from), bpw_from, mib(report.bytes_to), bpw_to);
            if (report.n_fallbacks > 0) {
              std::cout << fmt::format("{} tensors used a fallback type (row length not a multiple of the block size)\n",
                                       report.n_fallbacks);
            }
            std::cout << fmt::format("wrote {} (general.file_type {})\n", args->out, report.file_type);
            return 0;
          }};
}

}  // namespace slm::cli
