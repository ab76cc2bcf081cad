#include "slm/hub/pull.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slm/hub/names.hpp"
#include "slm/hub/progress.hpp"
#include "slm/hub/select.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {

namespace fs = std::filesystem;

namespace {
// The weights' dtype of a Hugging Face folder, from config.json ("bfloat16" -> "BF16").
std::string folder_dtype(const fs::path& config) {
  std::ifstream in(config);
  if (!in) return "";
  try {
    const auto j = nlohmann::json::parse(in);
    std::string dtype;
    if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) dtype = j["torch_dtype"].get<std::string>();
    if (j.contains("dtype") && j["dtype"].is_string()) dtype = j["dtype"].get<std::string>();
    if (dtype == "bfloat16") return "BF16";
    if (dtype == "float16") return "F16";
    if (dtype == "float32") return "F32";
    return to_upper(dtype);
  } catch (const std::exception&) {
    return "";
  }
}
bool holds_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return true;  // nothing to remove
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory()) return true;
  }
  return bool(ec);
}

// Downloads the selected files into `dir`, adding each to the manifest `m`.
void fetch_files(const HubClient& hub, const ModelName& name, const RepoInfo& info, const Selection& sel,
                 const fs::path& dir, const std::optional<Manifest>& previous, const PullOptions& options, Manifest& m) {
  std::ostream* log = options.download.log;
  for (const auto& f : sel.files) {
    FileTarget t;
    t.repo_id = name.repo_id();
    t.url = hub.resolve_url(name.repo_id(), info.commit, f.path);
    t.dest = dir / f.path;
    // Defence in depth: the checked path must stay inside the entry folder.
    const auto rel = t.dest.lexically_normal().lexically_relative(dir.lexically_normal());
    if (rel.empty() || rel.native().rfind("..", 0) == 0) {
      fail(ErrorKind::format, "refusing '{}': it would be written outside '{}'", f.path, dir.string());
    }
    t.name = f.path;
    t.size = f.size;
    t.sha256 = f.sha256;
    t.git_sha1 = f.git_sha1;
    if (previous && !options.verify) {
      for (const auto& pf : previous->files) {
        if (pf.path == f.path) t.recorded_sha256 = pf.sha256;
      }
    }
    const DownloadResult r = download_file(hub, t, options.download);
    if (log && !r.downloaded) *log << fmt::format("{}: already present ({})\n", f.path, human_bytes(r.size)) << std::flush;
    m.files.push_back({f.path, r.size, r.sha256, r.verified});
  }
}
}  // namespace

Manifest pull(const Store& store, const HubClient& hub, const std::string& text, const PullOptions& options) {
  const ModelName name = parse_model_name(text);
  std::ostream* log = options.download.log;
  const RepoInfo info = hub.repo_info(name.repo_id(), options.revision);
  const Selection sel = select_files(info, name);
  const fs::path dir = store.entry_dir(name.owner, name.repo, sel.folder);
  const std::optional<Manifest> previous = [&]() -> std::optional<Manifest> {
    try {
      return store.read_manifest(dir);
    } catch (const Error&) {
      return std::nullopt;  // a damaged manifest is rewritten below
    }
  }();
  uint64_t total = 0;
  for (const auto& f : sel.files) total += f.size > 0 ? uint64_t(f.size) : 0;
  if (log) {
    *log << fmt::format("{}: {} file{}, {} (commit {})\n", sel.canonical, sel.files.size(), sel.files.size() == 1 ? "" : "s",
                        human_bytes(total), info.commit.substr(0, 12))
         << std::flush;
  }
  Manifest m;
  m.name = sel.canonical;
  m.repo = name.repo_id();
  m.revision = options.revision;
  m.commit = info.commit;
  m.endpoint = hub.config().endpoint;
  m.format = sel.format;
  m.quant = sel.quant;
  m.entry = sel.entry;
  m.dir = dir;
  try {
    fetch_files(hub, name, info, sel, dir, previous, options, m);
  } catch (...) {
    if (!holds_files(dir)) store.remove_dir(dir);  // nothing to resume
    throw;
  }
  if (m.format == "safetensors") m.quant = folder_dtype(dir / "config.json");
  m.pulled_at = utc_now_iso8601();
  store.write_manifest(m);
  if (previous) {  // files of an older commit that the new selection no longer has
    for (const auto& pf : previous->files) {
      const bool kept = std::any_of(m.files.begin(), m.files.end(), [&](const ManifestFile& f) { return f.path == pf.path; });
      std::error_code ec;
      if (!kept) fs::remove(dir / pf.path, ec);
    }
  }
  return m;
}

}  // namespace slm::hub
