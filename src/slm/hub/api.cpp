#include "slm/hub/api.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slm/hub/hash.hpp"
#include "slm/hub/names.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string read_token_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
  return token;
}

std::string shorten(const std::string& s, size_t n = 300) { return s.size() <= n ? s : s.substr(0, n) + "..."; }
}  // namespace

HubConfig HubConfig::from_env() {
  HubConfig c;
  if (std::string e = env("HF_ENDPOINT"); !e.empty()) c.endpoint = e;
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  c.token = env("HF_TOKEN");
  if (c.token.empty()) c.token = env("HUGGING_FACE_HUB_TOKEN");
  if (c.token.empty()) {
    std::filesystem::path path = env("HF_TOKEN_PATH");
    if (path.empty()) {
      std::filesystem::path home = env("HF_HOME");
      if (home.empty()) {
        const std::string xdg = env("XDG_CACHE_HOME");
        const std::string user_home = env("HOME");
        if (!xdg.empty()) {
          home = std::filesystem::path(xdg) / "huggingface";
        } else if (!user_home.empty()) {
          home = std::filesystem::path(user_home) / ".cache" / "huggingface";
        }
      }
      if (!home.empty()) path = home / "token";
    }
    if (!path.empty()) c.token = read_token_file(path);
  }
  return c;
}

RepoInfo parse_repo_info(const std::string& json_text, const std::string& repo_id) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    fail(ErrorKind::format, "expected JSON from the hub for '{}', found a parse error: {}", repo_id, e.what());
  }
  if (!j.is_object() || !j.contains("siblings") || !j["siblings"].is_array()) {
    fail(ErrorKind::format, "expected a model description with 'siblings' from the hub for '{}', found {}", repo_id,
         shorten(json_text));
  }
  RepoInfo info;
  info.id = j.value("id", repo_id);
  if (j.contains("sha") && j["sha"].is_string()) info.commit = j["sha"].get<std::string>();
  for (const auto& s : j["siblings"]) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) {
      fail(ErrorKind::format, "expected siblings with an 'rfilename' string for '{}', found {}", repo_id, shorten(s.dump()));
    }
    RepoFile f;
    f.path = s["rfilename"].get<std::string>();
    if (!is_safe_relative_path(f.path)) {
      try {
        check_relative_path("a file name listed by the hub", f.path);
      } catch (const Error& e) {
        fail(ErrorKind::format, "refusing the listing of '{}': {}", repo_id, e.what());
      }
    }
    if (s.contains("size") && s["size"].is_number_unsigned()) f.size = s["size"].get<int64_t>();
    if (s.contains("lfs") && s["lfs"].is_object()) {
      const auto& lfs = s["lfs"];
      f.lfs = true;
      if (lfs.contains("sha256") && lfs["sha256"].is_string()) f.sha256 = to_lower(lfs["sha256"].get<std::string>());
      if (lfs.contains("size") && lfs["size"].is_number_unsigned()) f.size = lfs["size"].get<int64_t>();
      if (!f.sha256.empty() && !is_hex_digest(f.sha256, 64)) {
        fail(ErrorKind::format, "expected a 64-digit hex sha256 for '{}' in '{}', found '{}'", f.path, repo_id, f.sha256);
      }
    } else if (s.contains("blobId") && s["blobId"].is_string()) {
      f.git_sha1 = to_lower(s["blobId"].get<std::string>());
      if (!is_hex_digest(f.git_sha1, 40)) f.git_sha1.clear();
    }
    info.files.push_back(std::move(f));
  }
  std::sort(info.files.begin(), info.files.end(), [](const RepoFile& a, const RepoFile& b) { return a.path < b.path; });
  return info;
}

namespace {
HttpOptions http_options(const HubConfig& config) {
  HttpOptions o;
  o.bearer_token = config.token;
  o.auth_origin = origin_of(config.endpoint);
  return o;
}
}  // namespace

HubClient::HubClient(HubConfig config) : config_(std::move(config)), http_(http_options(config_)) {
  if (origin_of(config_.endpoint).empty()) {
    fail(ErrorKind::invalid_argument, "expected HF_ENDPOINT to be an http(s) URL, found '{}'", config_.endpoint);
  }
}

void HubClient::fail_status(long status, const std::string& what, const std::string& repo_id, const HttpHeaders& headers,
                            const std::string& body) const {
  std::string detail;
  if (auto it = headers.find("x-error-message"); it != headers.end()) detail = " (" + it->second + ")";
  const bool has_token = !config_.token.empty();
  if (status == 401) {
    fail(ErrorKind::not_found, "{}: the hub answered 401{}: '{}' is private, gated or does not exist; {}", what, detail,
         repo_id, has_token ? "the token in HF_TOKEN was not accepted for it" : "set HF_TOKEN to a token that can read it");
  }
  if (status == 403) {
    fail(ErrorKind::not_found, "{}: the hub answered 403{}: access to '{}' is restricted; accept its conditions on {}/{} "
         "and set HF_TOKEN to a token of that account", what, detail, repo_id, config_.endpoint, repo_id);
  }
  if (status == 404) {
    fail(ErrorKind::not_found, "{}: not found on {} (404){}{}", what, config_.endpoint, detail,
         has_token ? "" : "; private repositories need HF_TOKEN");
  }
  fail(ErrorKind::io, "{}: expected HTTP 200 from {}, found {}{} {}", what, config_.endpoint, status, detail, shorten(body, 200));
}

RepoInfo HubClient::repo_info(const std::string& repo_id, const std::string& revision) const {
  const std::string url = config_.endpoint + "/api/models/" + repo_id + "/revision/" +
                          url_encode_path(revision, false) + "?blobs=true";
  const HttpResponse r = http_.get(url);
  if (r.status != 200) fail_status(r.status, "listing the files of '" + repo_id + "'", repo_id, r.headers, r.body);
  RepoInfo info = parse_repo_info(r.body, repo_id);
  if (info.commit.empty()) info.commit = revision;
  return info;
}

std::string HubClient::resolve_url(const std::string& repo_id, const std::string& revision, const std::string& path) const {
  return config_.endpoint + "/" + repo_id + "/resolve/" + url_encode_path(revision, false) + "/" + url_encode_path(path);
}

}  // namespace slm::hub
