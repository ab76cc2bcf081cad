#include "slm/hub/store.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "slm/hub/names.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {

namespace fs = std::filesystem;

uint64_t Manifest::total_size() const {
  uint64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

fs::path Manifest::model_path() const { return entry == "." ? dir : dir / entry; }

nlohmann::json Manifest::to_json() const {
  nlohmann::json files_json = nlohmann::json::array();
  for (const auto& f : files) {
    files_json.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}, {"verified", f.verified}});
  }
  return {{"name", name},         {"source", source}, {"repo", repo},     {"revision", revision},
          {"commit", commit},     {"endpoint", endpoint}, {"format", format}, {"quant", quant},
          {"entry", entry},       {"files", files_json},  {"pulled_at", pulled_at}};
}

Manifest Manifest::from_json(const nlohmann::json& j, const fs::path& dir) {
  Manifest m;
  try {
    m.name = j.at("name").get<std::string>();
    m.source = j.value("source", "hf");
    m.repo = j.at("repo").get<std::string>();
    m.revision = j.value("revision", "");
    m.commit = j.value("commit", "");
    m.endpoint = j.value("endpoint", "");
    m.format = j.at("format").get<std::string>();
    m.quant = j.value("quant", "");
    m.entry = j.at("entry").get<std::string>();
    m.pulled_at = j.value("pulled_at", "");
    for (const auto& f : j.at("files")) {
      ManifestFile mf;
      mf.path = f.at("path").get<std::string>();
      mf.size = f.at("size").get<uint64_t>();
      mf.sha256 = f.value("sha256", "");
      mf.verified = f.value("verified", "");
      m.files.push_back(std::move(mf));
    }
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, "expected a manifest with name, repo, format, entry and files in '{}', found: {}", dir.string(),
         e.what());
  }
  if (m.entry != "." && !is_safe_relative_path(m.entry)) {
    fail(ErrorKind::format, "expected a relative entry path in the manifest of '{}', found '{}'", dir.string(), m.entry);
  }
  for (const auto& f : m.files) {
    if (!is_safe_relative_path(f.path)) {
      fail(ErrorKind::format, "expected relative file paths in the manifest of '{}', found '{}'", dir.string(), f.path);
    }
  }
  m.dir = dir;
  return m;
}

Store::Store(fs::path root) : root_(std::move(root)) {}

fs::path Store::default_root() {
  if (const char* home = std::getenv("SLM_HOME"); home && *home) return home;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "slm";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "slm";
  fail(ErrorKind::not_found, "expected SLM_HOME or HOME to be set to place the model store, found neither");
}

fs::path Store::repo_dir(const std::string& owner, const std::string& repo) const {
  check_repo_part("an owner name", owner);
  check_repo_part("a repository name", repo);
  return root_ / "models" / "hf" / owner / repo;
}

fs::path Store::entry_dir(const std::string& owner, const std::string& repo, const std::string& folder) const {
  if (folder.empty() || folder.find('/') != std::string::npos || !is_safe_relative_path(folder)) {
    fail(ErrorKind::invalid_argument, "expected a store folder name, found '{}'", folder);
  }
  return repo_dir(owner, repo) / folder;
}

std::optional<Manifest> Store::read_manifest(const fs::path& dir) const {
  const fs::path file = dir / "manifest.json";
  std::ifstream in(file);
  if (!in) return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail(ErrorKind::format, "expected JSON in '{}', found a parse error: {}", file.string(), e.what());
  }
  return Manifest::from_json(j, dir);
}

std::vector<Manifest> Store::list() const {
  std::vector<Manifest> out;
  const fs::path base = root_ / "models" / "hf";
  std::error_code ec;
  if (!fs::is_directory(base, ec)) return out;
  for (const auto& owner : fs::directory_iterator(base, ec)) {
    if (!owner.is_directory()) continue;
    for (const auto& repo : fs::directory_iterator(owner.path(), ec)) {
      if (!repo.is_directory()) continue;
      for (const auto& entry : fs::directory_iterator(repo.path(), ec)) {
        if (!entry.is_directory()) continue;
        try {
          if (auto m = read_manifest(entry.path())) out.push_back(std::move(*m));
        } catch (const Error&) {
          // a damaged manifest: the entry is not listed (slm rm can still remove it by name)
        }
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const Manifest& a, const Manifest& b) { return a.name < b.name; });
  return out;
}

std::optional<Manifest> Store::find(const std::string& text) const {
  const ModelName want = parse_model_name(text, true);
  std::vector<Manifest> candidates;
  for (auto& m : list()) {
    const size_t slash = m.repo.find('/');
    if (slash == std::string::npos) continue;
    const std::string owner = m.repo.substr(0, slash), repo = m.repo.substr(slash + 1);
    if (!iequals(repo, want.repo) || (!want.owner.empty() && !iequals(owner, want.owner))) continue;
    candidates.push_back(std::move(m));
  }
  auto describe = [](const std::vector<Manifest>& ms) {
    std::string s;
    for (const auto& m : ms) s += (s.empty() ? "" : ", ") + m.name;
    return s;
  };
  std::vector<Manifest> matches;
  for (const auto& m : candidates) {
    const ModelName have = parse_model_name(m.name);
    if (!want.file.empty()) {
      const bool named = iequals(have.file, want.file);
      const bool inside = std::any_of(m.files.begin(), m.files.end(), [&](const ManifestFile& f) { return f.path == want.file; });
      if (named || (inside && m.format == "gguf")) matches.push_back(m);
    } else if (!want.tag.empty()) {
      if (iequals(have.tag, want.tag) || (have.tag.empty() && iequals(m.quant, want.tag))) matches.push_back(m);
    } else {
      matches.push_back(m);
    }
  }
  if (matches.empty()) return std::nullopt;
  // A named file inside a split set and the set itself are the same model: prefer the named one.
  if (matches.size() > 1 && !want.file.empty()) {
    for (const auto& m : matches) {
      if (iequals(parse_model_name(m.name).file, want.file)) return m;
    }
  }
  std::vector<std::string> repos;
  for (const auto& m : matches) {
    if (std::find(repos.begin(), repos.end(), to_lower(m.repo)) == repos.end()) repos.push_back(to_lower(m.repo));
  }
  if (repos.size() > 1) {
    fail(ErrorKind::invalid_argument, "expected '{}' to name one model in the store, found several: {}", text, describe(matches));
  }
  if (matches.size() == 1) return matches.front();
  if (want.tag.empty() && want.file.empty()) {
    for (const char* tag : {"Q4_K_M", "Q8_0"}) {
      for (const auto& m : matches) {
        if (iequals(parse_model_name(m.name).tag, tag)) return m;
      }
    }
  }
  fail(ErrorKind::invalid_argument, "expected '{}' to name one model in the store, found several: {}", text, describe(matches));
}

void Store::write_manifest(const Manifest& m) const {
  static std::atomic<uint64_t> counter{0};
  const fs::path final_path = m.dir / "manifest.json";
  std::ostringstream suffix;
  suffix << ".tmp." << ::getpid() << "." << std::hash<std::thread::id>{}(std::this_thread::get_id()) << "." << counter++;
  const fs::path tmp = final_path.string() + suffix.str();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(ErrorKind::io, "cannot write '{}'", tmp.string());
    out << m.to_json().dump(2) << "\n";
    out.flush();
    if (!out) fail(ErrorKind::io, "cannot write '{}'", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(ErrorKind::io, "cannot move the manifest into place as '{}'", final_path.string());
  }
}

void Store::remove_dir(const fs::path& dir) const {
  const fs::path base = (root_ / "models").lexically_normal();
  const fs::path target = dir.lexically_normal();
  const auto rel = target.lexically_relative(base);
  if (rel.empty() || rel.native().rfind("..", 0) == 0 || target == base) {
    fail(ErrorKind::invalid_argument, "expected a folder inside the store '{}', found '{}'", base.string(), dir.string());
  }
  std::error_code ec;
  fs::remove_all(target, ec);
  if (ec) fail(ErrorKind::io, "cannot remove '{}': {}", target.string(), ec.message());
  // Empty repository and owner folders go too.
  for (fs::path p = target.parent_path(); p != base && p.lexically_relative(base).native().rfind("..", 0) != 0; p = p.parent_path()) {
    if (!fs::is_directory(p, ec) || !fs::is_empty(p, ec)) break;
    fs::remove(p, ec);
  }
}

std::string utc_now_iso8601() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace slm::hub
