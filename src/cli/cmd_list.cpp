// slm list: the models in the store (name, size, format, quantization, pull date).
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/hub/progress.hpp"
#include "slm/hub/store.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct ListArgs {
  bool json = false;
};
}  // namespace

Command add_list(CLI::App& app) {
  auto args = std::make_shared<ListArgs>();
  CLI::App* cmd = app.add_subcommand("list", "List the models in the store (SLM_HOME)");
  cmd->add_flag("--json", args->json, "One JSON array of the manifests, with their paths");
  return {cmd, [args]() {
            const hub::Store store = hub::Store::from_env();
            const auto models = store.list();
            if (args->json) {
              nlohmann::json out = nlohmann::json::array();
              for (const auto& m : models) {
                auto j = m.to_json();
                j["path"] = m.model_path().string();
                j["size"] = m.total_size();
                out.push_back(std::move(j));
              }
              std::cout << out.dump(2) << "\n";
              return 0;
            }
            if (models.empty()) {
              std::cerr << fmt::format("no models in {}; download one with `slm pull hf:OWNER/REPO[:QUANT]`\n",
                                       store.root().string());
              return 0;
            }
            size_t width = 4;
            for (const auto& m : models) width = std::max(width, m.name.size());
            std::cout << fmt::format("{:<{}}  {:>10}  {:<11}  {:<8}  {}\n", "NAME", width, "SIZE", "FORMAT", "QUANT", "PULLED");
            for (const auto& m : models) {
              std::cout << fmt::format("{:<{}}  {:>10}  {:<11}  {:<8}  {}\n", m.name, width, hub::human_bytes(m.total_size()),
                                       m.format, m.quant.empty() ? "-" : m.quant, m.pulled_at.substr(0, 10));
            }
            return 0;
          }};
}

}  // namespace slm::cli
