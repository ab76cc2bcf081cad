// `slm pull`: list a repository, choose its files (select.hpp), download and verify each
// (download.hpp), then write the store manifest.
#pragma once

#include <ostream>
#include <string>

#include "slm/hub/api.hpp"
#include "slm/hub/download.hpp"
#include "slm/hub/store.hpp"

namespace slm::hub {

struct PullOptions {
  std::string revision = "main";
  bool verify = false;  // re-hash files already in place instead of trusting the manifest's hashes
  DownloadOptions download;
};

// Pulls a model name (hf:OWNER/REPO[:TAG] or hf:OWNER/REPO/FILE.gguf; "hf:" may be left out) into
// the store and returns its manifest. Files already in place and matching the hub are kept.
Manifest pull(const Store& store, const HubClient& hub, const std::string& name, const PullOptions& options);

}  // namespace slm::hub
