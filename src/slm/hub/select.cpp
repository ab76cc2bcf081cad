#include "slm/hub/select.hpp"

#include <algorithm>
#include <set>

#include "slm/util/error.hpp"

namespace slm::hub {

namespace {

bool is_gguf(const RepoFile& f) { return iends_with(f.path, ".gguf"); }
bool is_projector(const RepoFile& f) { return to_lower(base_name(f.path)).find("mmproj") != std::string::npos; }

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

// All parts of the split set `part` belongs to, in order; fails when one is missing.
std::vector<RepoFile> split_set(const RepoInfo& info, const SplitPart& part, const std::string& shown) {
  std::vector<RepoFile> parts(size_t(part.count));
  std::vector<bool> seen(size_t(part.count), false);
  for (const auto& f : info.files) {
    auto p = split_part(f.path);
    if (p && p->prefix == part.prefix && p->count == part.count) {
      parts[size_t(p->index - 1)] = f;
      seen[size_t(p->index - 1)] = true;
    }
  }
  for (int i = 0; i < part.count; ++i) {
    if (!seen[size_t(i)]) {
      fail(ErrorKind::not_found, "expected {} parts of the split GGUF '{}' in '{}', found part {} missing", part.count, shown,
           info.id, i + 1);
    }
  }
  return parts;
}

// GGUF files for a tag: the first single file, else the first split set; empty when none.
std::vector<RepoFile> gguf_for_tag(const RepoInfo& info, const std::string& tag) {
  const RepoFile* first_split = nullptr;
  for (const auto& f : info.files) {
    if (!is_gguf(f) || is_projector(f) || !name_has_tag(f.path, tag)) continue;
    auto part = split_part(f.path);
    if (!part) return {f};
    if (!first_split && part->index == 1) first_split = &f;
  }
  if (first_split) return split_set(info, *split_part(first_split->path), first_split->path);
  return {};
}

Selection gguf_selection(const RepoInfo& info, const ModelName& name, std::vector<RepoFile> files, const std::string& tag) {
  Selection s;
  s.format = "gguf";
  s.files = std::move(files);
  s.entry = s.files.front().path;
  s.quant = detect_quant(s.entry);
  const std::string used_tag = !tag.empty() ? tag : s.quant;
  ModelName canonical = name;
  canonical.file.clear();
  canonical.tag.clear();
  if (!used_tag.empty() && !gguf_for_tag(info, used_tag).empty() && gguf_for_tag(info, used_tag).front().path == s.entry) {
    canonical.tag = to_upper(used_tag);
    s.folder = folder_for_tag(canonical.tag);
  } else {
    canonical.file = s.entry;
    s.folder = folder_for_file(s.entry);
  }
  s.canonical = canonical.canonical();
  return s;
}

// The config.json of a sentence-transformers module folder ("1_Pooling/config.json",
// "2_Dense/config.json"): one folder level whose name is digits, '_' and a name.
bool is_module_config(const std::string& path) {
  const size_t slash = path.find('/');
  if (slash == std::string::npos || path.substr(slash + 1) != "config.json") return false;
  size_t digits = 0;
  while (digits < slash && path[digits] >= '0' && path[digits] <= '9') ++digits;
  return digits > 0 && digits + 1 < slash && path[digits] == '_';
}

Selection safetensors_selection(const RepoInfo& info, const ModelName& name) {
  // Model files plus the sentence-transformers files that say how an encoder pools and
  // normalizes its token vectors.
  static const std::set<std::string> wanted = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                               "generation_config.json", "model.safetensors.index.json",
                                               "modules.json", "sentence_bert_config.json",
                                               "config_sentence_transformers.json"};
  Selection s;
  s.format = "safetensors";
  s.entry = std::string(1, '.');  // (a string literal here trips a g++ 12 -Wrestrict false positive)
  bool config = false, weights = false;
  for (const auto& f : info.files) {
    if (is_module_config(f.path)) {
      s.files.push_back(f);
      continue;
    }
    if (f.path.find('/') != std::string::npos) continue;  // otherwise top level only
    const bool weight = iends_with(f.path, ".safetensors");
    if (weight || wanted.count(f.path)) s.files.push_back(f);
    config = config || f.path == "config.json";
    weights = weights || weight;
  }
  if (!config || !weights) {
    const char* missing = !config && !weights ? "neither" : (!config ? "no config.json" : "no .safetensors file");
    fail(ErrorKind::not_found, "expected config.json and *.safetensors at the top of '{}' for a safetensors model, found {}",
         info.id, missing);
  }
  ModelName canonical = name;
  canonical.file.clear();
  canonical.tag = "safetensors";
  s.canonical = canonical.canonical();
  s.folder = folder_for_tag("safetensors");
  return s;
}

}  // namespace

std::string folder_for_tag(const std::string& tag) { return tag == "safetensors" ? tag : to_upper(tag); }

std::string folder_for_file(const std::string& path) {
  std::string folder = path;
  for (size_t pos = folder.find('/'); pos != std::string::npos; pos = folder.find('/', pos + 2)) folder.replace(pos, 1, "--");
  return folder;
}

std::vector<std::string> available_quants(const RepoInfo& info) {
  std::set<std::string> tags;
  for (const auto& f : info.files) {
    if (!is_gguf(f) || is_projector(f)) continue;
    if (std::string q = detect_quant(f.path); !q.empty()) tags.insert(q);
  }
  return {tags.begin(), tags.end()};
}

Selection select_files(const RepoInfo& info, const ModelName& name) {
  if (!name.file.empty()) {
    auto it = std::find_if(info.files.begin(), info.files.end(), [&](const RepoFile& f) { return f.path == name.file; });
    if (it == info.files.end()) {
      fail(ErrorKind::not_found, "expected '{}' in the files of '{}', found no such file", name.file, info.id);
    }
    std::vector<RepoFile> files = {*it};
    if (auto part = split_part(it->path)) files = split_set(info, *part, it->path);
    Selection s = gguf_selection(info, name, files, "");
    ModelName canonical = name;  // a named file keeps its own store name
    canonical.tag.clear();
    s.canonical = canonical.canonical();
    s.folder = folder_for_file(name.file);
    return s;
  }
  if (name.tag == "safetensors") return safetensors_selection(info, name);
  if (!name.tag.empty()) {
    auto files = gguf_for_tag(info, name.tag);
    if (files.empty()) {
      const auto tags = available_quants(info);
      fail(ErrorKind::not_found, "expected a GGUF file with '{}' in its name in '{}', found {}", name.tag, info.id,
           tags.empty() ? std::string("no GGUF files") : "only " + join(tags));
    }
    return gguf_selection(info, name, std::move(files), name.tag);
  }
  const bool has_gguf = std::any_of(info.files.begin(), info.files.end(), [](const RepoFile& f) { return is_gguf(f) && !is_projector(f); });
  if (has_gguf) {
    for (const char* tag : {"Q4_K_M", "Q8_0"}) {
      if (auto files = gguf_for_tag(info, tag); !files.empty()) return gguf_selection(info, name, std::move(files), tag);
    }
    for (const auto& f : info.files) {
      if (!is_gguf(f) || is_projector(f)) continue;
      auto part = split_part(f.path);
      if (part && part->index != 1) continue;
      return gguf_selection(info, name, part ? split_set(info, *part, f.path) : std::vector<RepoFile>{f}, "");
    }
  }
  return safetensors_selection(info, name);
}

}  // namespace slm::hub
