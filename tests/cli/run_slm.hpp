// Runs the `slm` binary as a user does, for the black-box tests of tests/cli.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace slm_test {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// A folder of this test process, removed when the process ends.
inline fs::path scratch() {
  static const struct Dir {
    fs::path path = fs::temp_directory_path() / ("slm_cli_test_" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } dir;
  return dir.path;
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `slm ARGS` through the shell with `input` on standard input.
inline Result run_slm(const std::string& args, const std::string& input = "") {
  const fs::path in = scratch() / "stdin", out = scratch() / "stdout", err = scratch() / "stderr";
  std::ofstream(in, std::ios::binary) << input;
  const std::string cmd = std::string(SLM_EXE) + " " + args + " <" + in.string() + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace slm_test
