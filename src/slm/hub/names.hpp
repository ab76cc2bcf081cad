// Model names users type (`hf:OWNER/REPO[:TAG]`, `hf:OWNER/REPO/FILE.gguf`, short names for models
// already in the store), the checks that keep names and hub-listed paths inside the store, and the
// quantization tags and split-GGUF parts read from file names.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace slm::hub {

struct ModelName {
  std::string owner;  // empty only in a short name ("REPO" or "REPO:TAG")
  std::string repo;
  std::string tag;    // a quantization tag ("Q4_K_M"), "safetensors", or empty
  std::string file;   // a repo-relative .gguf path, or empty
  bool has_source = false;  // written with the "hf:" prefix

  std::string repo_id() const { return owner + "/" + repo; }
  // "hf:OWNER/REPO", "hf:OWNER/REPO:TAG" or "hf:OWNER/REPO/FILE".
  std::string canonical() const;
};

// Parses a model name. Accepted: `hf:OWNER/REPO`, `hf:OWNER/REPO:TAG`, `hf:OWNER/REPO/PATH.gguf`, the
// same without `hf:`, and (with allow_short) `REPO` / `REPO:TAG`. Throws Error(invalid_argument)
// naming the offending part.
ModelName parse_model_name(std::string_view text, bool allow_short = false);

// True when `text` could be a model name (it is not a path that starts with '/', '.' or '~').
bool looks_like_model_name(std::string_view text);

// An owner or repository name: letters, digits, '-', '_', '.', 1..96 characters, not starting with
// '.' or '-' and without "..". Throws Error(invalid_argument).
void check_repo_part(std::string_view what, std::string_view part);
// A relative path (from a user or from the hub's listing): '/'-separated segments, none empty, "."
// or "..", no backslash, no control character, not absolute, at most 1024 bytes.
bool is_safe_relative_path(std::string_view path);
void check_relative_path(std::string_view what, std::string_view path);

std::string to_upper(std::string_view s);
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool iends_with(std::string_view s, std::string_view suffix);
std::string_view base_name(std::string_view path);

// The quantization tag in a GGUF file name ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf" -> "Q4_K_M"), or "".
// A tag is I?Q<digits>(_<alnum>)*, F16, BF16 or F32, bounded by non-alphanumeric characters.
std::string detect_quant(std::string_view file_name);
// True when `tag` occurs in the file's base name, case-insensitively, not preceded by a letter or
// digit and not followed by a letter, digit or '_' (so Q4_K does not match Q4_K_M).
bool name_has_tag(std::string_view file_name, std::string_view tag);

// "<prefix>-00002-of-00005.gguf": one part of a split GGUF.
struct SplitPart {
  std::string prefix;  // the path up to "-0000K-of-0000N"
  int index = 0;       // 1-based
  int count = 0;
};
std::optional<SplitPart> split_part(std::string_view path);

}  // namespace slm::hub
