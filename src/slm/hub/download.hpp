// One file from the hub into its place in the store:
// - the bytes go to "<dest>.part", locked with flock() so that concurrent pulls of the same file
//   wait for each other instead of writing into the same file;
// - a ".part" left by an interrupted pull is resumed with "Range: bytes=N-" (a server that answers
//   200 instead of 206 gets the file written from the start again);
// - transfer errors are retried (resuming) `retries` times, then reported; the ".part" stays;
// - the result is checked against the hub's SHA-256 (LFS files) or git blob id (small files): a
//   mismatch deletes the ".part" and fails, naming both hashes;
// - a verified file is renamed into place atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>

#include "slm/hub/api.hpp"
#include "slm/hub/progress.hpp"

namespace slm::hub {

struct FileTarget {
  std::string repo_id;        // for messages
  std::string url;            // the resolve URL
  std::filesystem::path dest;
  std::string name;           // shown in progress lines and errors
  int64_t size = -1;          // expected size; -1: unknown
  std::string sha256;         // expected; empty: the hub's X-Linked-Etag when it is a SHA-256
  std::string git_sha1;       // expected git blob id (files outside LFS)
  std::string recorded_sha256;  // what the store's manifest says `dest` holds (saves re-hashing)
};

struct DownloadOptions {
  int retries = 3;  // further attempts (resuming) after a transfer error
  ProgressStyle progress = ProgressStyle::none;
  std::ostream* log = nullptr;  // progress and notices; nullptr: silent
  double line_interval_s = 5.0;
  double retry_delay_s = 1.0;   // doubled after each failed attempt, at most 30 s
};

struct DownloadResult {
  bool downloaded = false;   // false: the file was already in place
  uint64_t size = 0;
  uint64_t transferred = 0;  // bytes received in this call
  std::string sha256;        // of the file now in place
  std::string verified;      // "sha256", "git-sha1" or "size"
};

DownloadResult download_file(const HubClient& hub, const FileTarget& target, const DownloadOptions& options);

}  // namespace slm::hub
