// Which files of a repository a model name means.
//
//   hf:O/R:TAG          GGUF files whose name carries TAG (case-insensitive, bounded): a single file
//                       is preferred to a split set; a split set ("-00001-of-0000N") brings all parts.
//   hf:O/R:safetensors  the Hugging Face folder (config, tokenizer, weights, index) and the
//                       sentence-transformers files (modules.json, N_Name/config.json, ...).
//   hf:O/R/FILE.gguf    that file (with all its parts if it is one part of a split set).
//   hf:O/R              GGUF repo: Q4_K_M, else Q8_0, else the first GGUF by path; otherwise the
//                       safetensors folder.
// GGUF files whose name contains "mmproj" (vision projectors) are never picked by a tag.
#pragma once

#include <string>
#include <vector>

#include "slm/hub/api.hpp"
#include "slm/hub/names.hpp"

namespace slm::hub {

struct Selection {
  std::string canonical;  // the store name: hf:O/R:TAG, hf:O/R:safetensors or hf:O/R/FILE.gguf
  std::string folder;     // the entry's folder name inside the repository's store folder
  std::string format;     // "gguf" or "safetensors"
  std::string quant;      // the quantization tag ("" when unknown; safetensors: filled after download)
  std::string entry;      // what to load, relative to the folder: a .gguf path or "."
  std::vector<RepoFile> files;
};

Selection select_files(const RepoInfo& info, const ModelName& name);

// The distinct quantization tags of the repository's GGUF files, sorted.
std::vector<std::string> available_quants(const RepoInfo& info);

// The store folder name of a tag or a file path.
std::string folder_for_tag(const std::string& tag);
std::string folder_for_file(const std::string& path);

}  // namespace slm::hub
