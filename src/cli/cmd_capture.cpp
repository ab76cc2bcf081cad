// slm capture export --config router.yaml --task TAG --format chat-jsonl: the answers the router
// captured from stronger tiers, as a fine-tuning data set.
#include <fstream>
#include <iostream>

#include "common.hpp"
#include "slm/router/config.hpp"
#include "slm/router/store.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {
struct CaptureArgs {
  std::string config;
  std::string database;
  std::string task;
  std::string format = "chat-jsonl";
  std::string output;
};
}  // namespace

Command add_capture(CLI::App& app) {
  auto args = std::make_shared<CaptureArgs>();
  CLI::App* cmd = app.add_subcommand("capture", "Data sets from the router's captured answers");
  cmd->require_subcommand(1);
  CLI::App* exp = cmd->add_subcommand("export", "Write captured conversations, one per line, without duplicates");
  exp->add_option("--config", args->config, "Router configuration (its accounting database is read)");
  exp->add_option("--db", args->database, "The router's SQLite log (instead of --config)");
  exp->add_option("--task", args->task, "Only this task tag (default: all)");
  exp->add_option("--format", args->format, "Output format: chat-jsonl ({\"messages\": [...]} per line)")->capture_default_str();
  exp->add_option("-o,--output", args->output, "Output file (default: standard output)");
  return {cmd, [args]() {
            if (args->format != "chat-jsonl") fail(ErrorKind::invalid_argument, "expected --format chat-jsonl, found '{}'", args->format);
            std::string db = args->database;
            if (db.empty()) {
              if (args->config.empty()) fail(ErrorKind::invalid_argument, "expected --config or --db, found neither");
              db = router::load_config(args->config).database;
            }
            int64_t n = 0;
            if (args->output.empty()) {
              n = router::export_captures(db, args->task, std::cout);
            } else {
              std::ofstream out(args->output, std::ios::binary);
              if (!out) fail(ErrorKind::io, "expected to write '{}', found it cannot be opened", args->output);
              n = router::export_captures(db, args->task, out);
            }
            std::cerr << "exported " << n << " conversations\n";
            return 0;
          }};
}

}  // namespace slm::cli
