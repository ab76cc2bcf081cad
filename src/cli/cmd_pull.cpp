// slm pull NAME: download a model from the Hugging Face hub into the store (docs/store.md).
#include <fmt/format.h>

#include <iostream>

#include "common.hpp"
#include "slm/hub/progress.hpp"
#include "slm/hub/pull.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct PullArgs {
  std::string name;
  std::string revision = "main";
  int retries = 3;
  bool quiet = false;
  bool verify = false;
};
}  // namespace

Command add_pull(CLI::App& app) {
  auto args = std::make_shared<PullArgs>();
  CLI::App* cmd = app.add_subcommand("pull", "Download a model from the Hugging Face hub into the store");
  cmd->add_option("name", args->name, "hf:OWNER/REPO[:QUANT], hf:OWNER/REPO/FILE.gguf, or hf:OWNER/REPO:safetensors")->required();
  cmd->add_option("--revision", args->revision, "Branch, tag or commit of the repository")->capture_default_str();
  cmd->add_option("--retries", args->retries, "Resumed attempts after a broken transfer")->capture_default_str();
  cmd->add_flag("-q,--quiet", args->quiet, "No progress output");
  cmd->add_flag("--verify", args->verify, "Re-hash files already in the store instead of trusting the manifest");
  return {cmd, [args]() {
            if (args->retries < 0) fail(ErrorKind::invalid_argument, "--retries must be >= 0, found {}", args->retries);
            const hub::Store store = hub::Store::from_env();
            const hub::HubClient client(hub::HubConfig::from_env());
            hub::PullOptions options;
            options.revision = args->revision;
            options.verify = args->verify;
            options.download.retries = args->retries;
            options.download.log = args->quiet ? nullptr : &std::cerr;
            options.download.progress = args->quiet ? hub::ProgressStyle::none : hub::default_progress_style();
            const hub::Manifest m = hub::pull(store, client, args->name, options);
            std::cout << fmt::format("{}\t{}\t{}\n", m.name, hub::human_bytes(m.total_size()), m.model_path().string());
            return 0;
          }};
}

}  // namespace slm::cli
