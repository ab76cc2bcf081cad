// slm rm NAME: delete a model (or a partial download) from the store.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "common.hpp"
#include "slm/hub/names.hpp"
#include "slm/hub/progress.hpp"
#include "slm/hub/select.hpp"
#include "slm/hub/store.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct RmArgs {
  std::string name;
};
}  // namespace

Command add_rm(CLI::App& app) {
  auto args = std::make_shared<RmArgs>();
  CLI::App* cmd = app.add_subcommand("rm", "Delete a model from the store");
  cmd->add_option("name", args->name, "Store name (see `slm list`)")->required();
  return {cmd, [args]() {
            const hub::Store store = hub::Store::from_env();
            if (auto m = store.find(args->name)) {
              store.remove_dir(m->dir);
              std::cout << fmt::format("removed {} ({})\n", m->name, hub::human_bytes(m->total_size()));
              return 0;
            }
            // A pull that never finished has a folder but no manifest: remove it by its full name.
            const hub::ModelName name = hub::parse_model_name(args->name, true);
            if (!name.owner.empty() && (!name.tag.empty() || !name.file.empty())) {
              const std::string folder = name.file.empty() ? hub::folder_for_tag(name.tag) : hub::folder_for_file(name.file);
              const auto dir = store.entry_dir(name.owner, name.repo, folder);
              if (std::filesystem::exists(dir)) {
                store.remove_dir(dir);
                std::cout << fmt::format("removed the partial download {}\n", name.canonical());
                return 0;
              }
            }
            fail(ErrorKind::not_found, "no model '{}' in the store ({}); see `slm list`", args->name, store.root().string());
          }};
}

}  // namespace slm::cli
