// Resumable evaluations: every finished request's result is stored in SQLite under a key made of the
// task, the data files' SHA-256, the item, what answers (model file, endpoint, router configuration)
// and the generation settings (prompt, stop strings, token limit, temperature, seed). A rerun asks
// the backend only for what is not stored, so an interrupted run resumes where it stopped.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "slm/eval/backend.hpp"

struct sqlite3;

namespace slm::eval {

std::string sha256_hex(const std::string& data);
// SHA-256 of a file's bytes; throws Error(not_found) when it cannot be read.
std::string file_sha256(const std::string& path);

class ResultCache {
 public:
  // Creates the file and its table when missing.
  explicit ResultCache(const std::string& path);
  ~ResultCache();
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  std::optional<nlohmann::json> get(const std::string& key);
  void put(const std::string& key, const nlohmann::json& value);
  int64_t size();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  std::mutex mutex_;
};

// A backend that answers from the cache what it can and asks `inner` for the rest, storing each new
// result as soon as it is finished. `scope` holds what the keys share (task, data hashes, options).
class CachingBackend final : public Backend {
 public:
  CachingBackend(Backend& inner, ResultCache& cache, nlohmann::json scope);

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                 const Progress& progress, const OnScored& each = {}) override;
  std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                   const OnGenerated& each = {}) override;
  std::string name() const override { return inner_.name(); }
  nlohmann::json identity() const override { return inner_.identity(); }
  nlohmann::json usage() const override { return inner_.usage(); }

  int64_t reused() const { return reused_; }
  int64_t computed() const { return computed_; }

  std::string key(const LoglikelihoodRequest& request) const;
  std::string key(const GenerationSpec& spec) const;

 private:
  Backend& inner_;
  ResultCache& cache_;
  std::string scope_;
  int64_t reused_ = 0, computed_ = 0;
};

}  // namespace slm::eval
