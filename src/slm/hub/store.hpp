// The model store: $SLM_HOME/models/hf/<owner>/<repo>/<folder>/ holds one pulled model (a
// quantization, a named GGUF file, or the safetensors folder) with its files under their repository
// paths and a manifest.json written last, once every file is verified.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace slm::hub {

struct ManifestFile {
  std::string path;    // repository-relative
  uint64_t size = 0;
  std::string sha256;  // of the bytes on disk
  std::string verified;  // how they were checked against the hub: "sha256", "git-sha1" or "size"
};

struct Manifest {
  std::string name;      // canonical store name: hf:OWNER/REPO:TAG or hf:OWNER/REPO/FILE.gguf
  std::string source = "hf";
  std::string repo;      // OWNER/REPO
  std::string revision;  // as asked ("main")
  std::string commit;    // the commit the files came from
  std::string endpoint;
  std::string format;    // "gguf" or "safetensors"
  std::string quant;     // Q4_K_M, BF16, ...; "" when unknown
  std::string entry;     // what to load, relative to `dir`: a .gguf file or "."
  std::vector<ManifestFile> files;
  std::string pulled_at;  // UTC, ISO 8601
  std::filesystem::path dir;  // where it lives (not stored in the file)

  uint64_t total_size() const;
  std::filesystem::path model_path() const;  // dir / entry
  nlohmann::json to_json() const;
  static Manifest from_json(const nlohmann::json& j, const std::filesystem::path& dir);
};

class Store {
 public:
  explicit Store(std::filesystem::path root);
  // $SLM_HOME, else $XDG_CACHE_HOME/slm, else $HOME/.cache/slm.
  static std::filesystem::path default_root();
  static Store from_env() { return Store(default_root()); }

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path repo_dir(const std::string& owner, const std::string& repo) const;
  std::filesystem::path entry_dir(const std::string& owner, const std::string& repo, const std::string& folder) const;

  // Every complete entry, sorted by name. Unreadable manifests are skipped.
  std::vector<Manifest> list() const;
  // Resolves a store name: hf:O/R:TAG, hf:O/R/FILE.gguf (also a file inside another entry of O/R),
  // hf:O/R (the only entry of O/R, else its Q4_K_M, else its Q8_0), and the same without "hf:",
  // or without the owner ("R", "R:TAG"). Case-insensitive. nullopt when nothing matches; throws
  // Error(invalid_argument) when the name is ambiguous or malformed.
  std::optional<Manifest> find(const std::string& name) const;
  // Reads the manifest of an entry folder, if it has one.
  std::optional<Manifest> read_manifest(const std::filesystem::path& dir) const;
  // Writes dir/manifest.json atomically (a temporary name, then rename).
  void write_manifest(const Manifest& m) const;
  // Deletes an entry folder (with partial downloads) and empty parent folders.
  void remove_dir(const std::filesystem::path& dir) const;

 private:
  std::filesystem::path root_;
};

std::string utc_now_iso8601();

}  // namespace slm::hub
