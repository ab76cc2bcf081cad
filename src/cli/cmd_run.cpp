// slm run MODEL --prompt "..." : stream generated text to stdout, speeds to stderr.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "common.hpp"
#include "slm/util/error.hpp"
#include "slm/engine/cuda_session.hpp"
#include "slm/engine/generate.hpp"

namespace slm::cli {
namespace {
struct RunArgs {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  int64_t n_predict = 128;
  int64_t ctx = 4096;
  int threads = 0;
  bool no_special = false;
  bool echo = false;
  SamplerOptions sampling;
  int64_t seed = -1;
  std::string device = "auto";
  CacheTypeArgs cache_types;
};
}  // namespace

Command add_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt, streamed to stdout");
  cmd->add_option("model", args->model, "GGUF file, Hugging Face folder or store name (default: the demo model)");
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text");
  cmd->add_option("-f,--file", args->prompt_file, "Read the prompt from a file");
  cmd->add_option("-n,--n-predict", args->n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_option("-c,--ctx", args->ctx, "Context size (tokens)")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  add_sampling_options(cmd, args->sampling, args->seed);
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS/EOS tokens to the prompt");
  cmd->add_flag("--echo", args->echo, "Print the prompt before the generated text");
  add_cache_type_options(cmd, args->cache_types);
  cmd->add_option("--device", args->device, "cpu, cuda or auto (CUDA when built with it, a GPU is present and the model runs there)")
      ->capture_default_str();
  return {cmd, [args]() {
            set_threads(args->threads);
            if (!args->prompt_file.empty()) args->prompt = read_file(args->prompt_file);
            if (args->n_predict < 0) fail(ErrorKind::invalid_argument, "-n must be >= 0, found {}", args->n_predict);
            auto model = load_model(args->model);
            const Tokenizer& tok = require_tokenizer(*model);
            std::vector<int32_t> prompt = tok.encode(args->prompt, !args->no_special, true);
            if (prompt.empty()) fail(ErrorKind::invalid_argument, "the prompt is empty and the model adds no BOS token");
            Sampler sampler(with_seed(args->sampling, args->seed));
            GenerationStats stats;
            const auto run_on = [&](auto& session) {
              if (int64_t(prompt.size()) >= session.n_ctx()) {
                fail(ErrorKind::out_of_range, "the prompt has {} tokens; the context holds {}", prompt.size(),
                     session.n_ctx());
              }
              if (args->echo) std::fwrite(args->prompt.data(), 1, args->prompt.size(), stdout);
              StreamDecoder decoder(tok);
              stats = generate(session, sampler, prompt, args->n_predict, [&](int32_t token) {
                const std::string piece = decoder.push(token);
                std::fwrite(piece.data(), 1, piece.size(), stdout);
                std::fflush(stdout);
                return true;
              });
              const std::string rest = decoder.flush();
              std::fwrite(rest.data(), 1, rest.size(), stdout);
              std::fputc('\n', stdout);
              std::fflush(stdout);
            };
            const auto [k_type, v_type] = cache_types(args->cache_types);
            if (choose_device(args->device, *model, args->ctx) == Device::cuda) {
              if (k_type != v_type || k_type == DType::Q8_0) {
                fail(ErrorKind::unsupported, "--device cuda: expected --cache-type-k and -v both f32 or both f16");
              }
              CudaSessionOptions co;
              co.n_ctx = args->ctx;
              co.kv_type = k_type;
              CudaSession session(model, co);
              run_on(session);
            } else {
              SessionOptions so;
              so.n_ctx = args->ctx;
              so.cache_type_k = k_type;
              so.cache_type_v = v_type;
              Session session(model, so);
              run_on(session);
            }
            std::cerr << fmt::format(
                "\nprompt: {} tokens in {:.3f} s ({:.2f} tokens/s); generation: {} tokens in {:.3f} s ({:.2f} tokens/s)\n",
                stats.prompt_tokens, stats.prompt_seconds,
                stats.prompt_seconds > 0 ? double(stats.prompt_tokens) / stats.prompt_seconds : 0.0,
                stats.generated_tokens, stats.generation_seconds,
                stats.generation_seconds > 0 ? double(stats.generated_tokens) / stats.generation_seconds : 0.0);
            return 0;
          }};
}

}  // namespace slm::cli
