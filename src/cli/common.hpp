// Shared pieces of the `slm` subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "slm/engine/sampler.hpp"
#include "slm/model/model.hpp"

namespace slm::cli {

// Each subcommand registers itself on the app and returns its runner.
using Runner = std::function<int()>;
struct Command {
  CLI::App* app;
  Runner run;
};

Command add_run(CLI::App& app);
Command add_score(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_detokenize(CLI::App& app);
Command add_info(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_quantize(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_template(CLI::App& app);
Command add_pull(CLI::App& app);
Command add_list(CLI::App& app);
Command add_show(CLI::App& app);
Command add_rm(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_route(CLI::App& app);
Command add_capture(CLI::App& app);
Command add_redact(CLI::App& app);
Command add_classify(CLI::App& app);
Command add_extract(CLI::App& app);
Command add_chunk(CLI::App& app);
Command add_embed(CLI::App& app);
Command add_eval(CLI::App& app);

// "1,2,3" or "[1, 2, 3]" -> ids; throws Error(invalid_argument) on anything else.
std::vector<int32_t> parse_ids(const std::string& text);
std::string ids_to_json(const std::vector<int32_t>& ids);
// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, --presence-penalty,
// --frequency-penalty and -s/--seed (-1: random), as run and chat take them.
void add_sampling_options(CLI::App* cmd, SamplerOptions& sampling, int64_t& seed);
// --cache-type-k and --cache-type-v (f32, f16 or q8_0; f32 by default, as every command that has no
// such flags uses); cache_types()
// reads them (Error(invalid_argument) naming the accepted values).
struct CacheTypeArgs {
  std::string k = "f32";
  std::string v = "f32";
};
void add_cache_type_options(CLI::App* cmd, CacheTypeArgs& args);
std::pair<DType, DType> cache_types(const CacheTypeArgs& args);
// The sampler options with the seed applied (-1: a random one).
SamplerOptions with_seed(SamplerOptions sampling, int64_t seed);
// Sets OpenMP's thread count (0: leave the default, one per core).
void set_threads(int threads);
// "" is the demo model. A path that exists is used as is; otherwise a store name
// (hf:OWNER/REPO[:QUANT], OWNER/REPO, REPO,
// ...) resolves to the stored file or folder (docs/store.md). Nothing is downloaded.
std::string resolve_model_path(const std::string& path_or_name);
std::shared_ptr<const Model> load_model(const std::string& path_or_name);
// The bundled demo model (models/demo/demo-q8_0.gguf in the source tree the running slm was built
// from, found by walking up from the executable); the default wherever a command needs a model.
std::string demo_model_path();
const Tokenizer& require_tokenizer(const Model& model);
std::string read_file(const std::string& path);
std::string read_stdin();

}  // namespace slm::cli
