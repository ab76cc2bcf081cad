// slm: one binary, one file per subcommand.
#include <CLI/CLI.hpp>

#include <iostream>

#include "common.hpp"
#include "slm/util/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"slm: run small language models", "slm"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "slm 0.1.0");
  std::vector<slm::cli::Command> commands = {
      slm::cli::add_run(app),     slm::cli::add_score(app), slm::cli::add_tokenize(app),
      slm::cli::add_detokenize(app), slm::cli::add_info(app),  slm::cli::add_convert(app),
      slm::cli::add_quantize(app),
      slm::cli::add_bench(app),   slm::cli::add_pull(app),  slm::cli::add_list(app),
      slm::cli::add_show(app),    slm::cli::add_rm(app),    slm::cli::add_template(app),
      slm::cli::add_route(app),   slm::cli::add_capture(app),
      slm::cli::add_redact(app), slm::cli::add_classify(app), slm::cli::add_extract(app),
      slm::cli::add_chunk(app),  slm::cli::add_embed(app),
      slm::cli::add_eval(app),
      slm::cli::add_serve(app),   slm::cli::add_chat(app),
  };
  if (argc < 2) {
    std::cerr << app.help();
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& c : commands) {
      if (c.app->parsed()) return c.run();
    }
  } catch (const slm::Error& e) {
    std::cerr << "slm: error: " << e.what() << "\n";
    return e.kind() == slm::ErrorKind::invalid_argument ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "slm: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
