// Scratch folders for tests: one per test process (removed when the process ends), and fresh
// sub-folders of it for single tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace slm_test {

// <tmp>/<prefix><pid>, created on first use and removed at exit.
template <const char* Prefix>
std::filesystem::path process_scratch() {
  struct Scratch {
    std::filesystem::path dir;
    Scratch() : dir(std::filesystem::temp_directory_path() / (std::string(Prefix) + std::to_string(::getpid()))) {
      std::filesystem::create_directories(dir);
    }
    ~Scratch() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  };
  static const Scratch scratch;
  return scratch.dir;
}

// An empty folder `name` under `root` (emptied if it exists).
inline std::filesystem::path fresh_dir_under(const std::filesystem::path& root, const std::string& name) {
  const std::filesystem::path d = root / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace slm_test
