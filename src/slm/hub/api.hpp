// The Hugging Face hub's HTTP API: where it is (HF_ENDPOINT), who we are (HF_TOKEN), and the file
// listing of a repository at a revision (GET /api/models/{repo}/revision/{rev}?blobs=true).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slm/hub/http.hpp"

namespace slm::hub {

struct HubConfig {
  std::string endpoint = "https://huggingface.co";  // no trailing '/'
  std::string token;                                // empty: anonymous

  // HF_ENDPOINT; the token from HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file HF_TOKEN_PATH,
  // else $HF_HOME/token (HF_HOME defaults to $XDG_CACHE_HOME/huggingface, then ~/.cache/huggingface).
  static HubConfig from_env();
};

struct RepoFile {
  std::string path;    // repo-relative, checked with is_safe_relative_path
  int64_t size = -1;   // -1: not listed
  std::string sha256;  // LFS files: the hub's SHA-256 of the content
  std::string git_sha1;  // other files: the git blob id of the content
  bool lfs = false;
};

struct RepoInfo {
  std::string id;      // "owner/repo" as the hub spells it
  std::string commit;  // the revision's commit sha
  std::vector<RepoFile> files;  // sorted by path
};

// Parses the JSON of /api/models/{repo}[/revision/{rev}] (siblings with rfilename, size, blobId,
// lfs.{sha256,size}). A listed file name that is not a safe relative path fails the whole listing
// (Error(format)).
RepoInfo parse_repo_info(const std::string& json_text, const std::string& repo_id);

class HubClient {
 public:
  explicit HubClient(HubConfig config);

  RepoInfo repo_info(const std::string& repo_id, const std::string& revision = "main") const;
  // {endpoint}/{repo}/resolve/{revision}/{path}
  std::string resolve_url(const std::string& repo_id, const std::string& revision, const std::string& path) const;
  // Turns a non-2xx status of the hub into an Error with advice (token, gated access, not found).
  [[noreturn]] void fail_status(long status, const std::string& what, const std::string& repo_id,
                                const HttpHeaders& headers, const std::string& body) const;

  const HubConfig& config() const { return config_; }
  const HttpClient& http() const { return http_; }

 private:
  HubConfig config_;
  HttpClient http_;
};

}  // namespace slm::hub
