#include "slm/hub/download.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "slm/hub/hash.hpp"
#include "slm/hub/names.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {

namespace fs = std::filesystem;

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

std::string sys_error() { return std::strerror(errno); }

void write_all(int fd, const char* data, size_t n, uint64_t offset, const fs::path& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, off_t(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(ErrorKind::io, "cannot write to '{}': {}", path.string(), sys_error());
    }
    data += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

void truncate_to(int fd, uint64_t size, const fs::path& path) {
  if (::ftruncate(fd, off_t(size)) != 0) fail(ErrorKind::io, "cannot truncate '{}': {}", path.string(), sys_error());
}

std::string strip_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return to_lower(etag);
}

std::string header(const HttpHeaders& h, const std::string& name) {
  auto it = h.find(name);
  return it == h.end() ? std::string() : it->second;
}

int64_t parse_size(const std::string& text) {
  if (text.empty() || text.size() > 19) return -1;
  for (char c : text) if (c < '0' || c > '9') return -1;
  return std::stoll(text);
}

// "bytes START-END/TOTAL" or "bytes */TOTAL" -> {start (-1 for '*'), total (-1 for '*')}.
std::optional<std::pair<int64_t, int64_t>> parse_content_range(const std::string& value) {
  if (value.rfind("bytes ", 0) != 0) return std::nullopt;
  const std::string spec = value.substr(6);
  const size_t slash = spec.find('/');
  if (slash == std::string::npos) return std::nullopt;
  const std::string range = spec.substr(0, slash), total = spec.substr(slash + 1);
  int64_t start = -1;
  if (range != "*") {
    const size_t dash = range.find('-');
    if (dash == std::string::npos) return std::nullopt;
    start = parse_size(range.substr(0, dash));
    if (start < 0) return std::nullopt;
  }
  return std::make_pair(start, total == "*" ? int64_t(-1) : parse_size(total));
}

bool same_file(int fd, const fs::path& path) {
  struct stat a {}, b {};
  if (::fstat(fd, &a) != 0 || ::stat(path.c_str(), &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// The file already in place, when it is the one wanted.
std::optional<DownloadResult> existing(const FileTarget& t) {
  std::error_code ec;
  if (!fs::is_regular_file(t.dest, ec)) return std::nullopt;
  const uint64_t size = fs::file_size(t.dest, ec);
  if (ec || (t.size >= 0 && size != uint64_t(t.size))) return std::nullopt;
  DownloadResult r;
  r.size = size;
  if (!t.sha256.empty()) {
    r.sha256 = t.recorded_sha256 == t.sha256 ? t.recorded_sha256 : sha256_file(t.dest);
    if (r.sha256 != t.sha256) return std::nullopt;
    r.verified = "sha256";
    return r;
  }
  if (!t.git_sha1.empty()) {
    if (git_blob_sha1_file(t.dest) != t.git_sha1) return std::nullopt;
    r.sha256 = t.recorded_sha256.empty() ? sha256_file(t.dest) : t.recorded_sha256;
    r.verified = "git-sha1";
    return r;
  }
  if (t.size < 0) return std::nullopt;
  r.sha256 = t.recorded_sha256.empty() ? sha256_file(t.dest) : t.recorded_sha256;
  r.verified = "size";
  return r;
}

bool retryable_status(long status) { return status == 408 || status == 429 || status >= 500; }

// Downloads into the locked ".part" `fd`, verifies, renames into place.
DownloadResult transfer(const HubClient& hub, const FileTarget& t, const DownloadOptions& options, int fd, const fs::path& part) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(ErrorKind::io, "cannot stat '{}': {}", part.string(), sys_error());
  uint64_t offset = uint64_t(st.st_size);
  int64_t total = t.size;
  if (total >= 0 && offset > uint64_t(total)) {
    truncate_to(fd, 0, part);
    offset = 0;
  }
  Hasher sha(HashKind::sha256);
  if (offset > 0) hash_file_prefix(sha, part, offset);
  std::string expected = t.sha256;
  Progress progress(options.log, options.progress, t.name, total, options.line_interval_s);
  DownloadResult result;
  result.downloaded = true;
  double delay = options.retry_delay_s;
  for (int attempt = 0;; ++attempt) {
    if (total >= 0 && offset == uint64_t(total)) break;  // complete (an earlier run stopped before the rename)
    uint64_t write_pos = offset;
    auto on_start = [&](long status, const HttpHeaders& h) {
      if (status == 206) {
        const auto range = parse_content_range(header(h, "content-range"));
        if (!range || range->first != int64_t(offset)) {
          fail(ErrorKind::io, "expected the server to resume '{}' at byte {}, found Content-Range '{}'", t.name, offset,
               header(h, "content-range"));
        }
        if (total < 0) total = range->second;
      } else if (status == 200) {
        if (offset > 0) {
          if (options.log) *options.log << fmt::format("{}: the server ignored the range request; starting again from byte 0\n", t.name);
          truncate_to(fd, 0, part);
          sha.reset();
          offset = write_pos = 0;
        }
        if (total < 0) total = parse_size(header(h, "content-length"));
      } else {
        fail(ErrorKind::io, "expected HTTP 200 or 206 for '{}', found {}", t.name, status);
      }
      progress.start(offset);
    };
    auto on_data = [&](const char* data, size_t n) {
      if (total >= 0 && write_pos + n > uint64_t(total)) {
        fail(ErrorKind::format, "expected {} bytes for '{}', found the server sending more", total, t.name);
      }
      write_all(fd, data, n, write_pos, part);
      sha.update(data, n);
      write_pos += n;
      result.transferred += n;
      progress.update(write_pos);
    };
    const StreamResult r = hub.http().stream(t.url, offset, on_start, on_data);
    offset = write_pos;
    if (expected.empty()) {
      const std::string linked = strip_etag(header(r.first_headers, "x-linked-etag"));
      if (is_hex_digest(linked, 64)) expected = linked;
    }
    if (total < 0) total = parse_size(header(r.first_headers, "x-linked-size"));
    std::string problem;
    if (!r.curl_error.empty()) {
      problem = r.curl_error;
    } else if (r.status == 416) {
      const auto range = parse_content_range(header(r.headers, "content-range"));
      if (range && range->second >= 0 && uint64_t(range->second) == offset) {
        total = range->second;
        break;
      }
      truncate_to(fd, 0, part);  // our partial file is longer than the file: start again
      sha.reset();
      offset = 0;
      problem = "the server could not resume (HTTP 416)";
    } else if (retryable_status(r.status)) {
      problem = fmt::format("HTTP {}", r.status);
    } else if (r.status < 200 || r.status >= 300) {
      hub.fail_status(r.status, "downloading '" + t.name + "'", t.repo_id, r.headers, r.error_body);
    } else if (total >= 0 && offset < uint64_t(total)) {
      problem = fmt::format("the server closed the transfer at byte {}", offset);
    } else {
      break;
    }
    if (attempt >= options.retries) {
      fail(ErrorKind::io, "downloading '{}' stopped at {} of {} bytes ({}); run the same `slm pull` again to resume", t.name,
           offset, total >= 0 ? std::to_string(total) : std::string("?"), problem);
    }
    if (options.log) {
      *options.log << fmt::format("{}: {} at byte {}; retrying in {:.1f} s ({} of {})\n", t.name, problem, offset, delay,
                                  attempt + 1, options.retries);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    delay = std::min(delay * 2, 30.0);
  }
  progress.finish(offset);
  if (total >= 0 && offset != uint64_t(total)) {
    fail(ErrorKind::io, "expected {} bytes for '{}', found {}", total, t.name, offset);
  }
  result.size = offset;
  result.sha256 = sha.hex_digest();
  auto mismatch = [&](const char* kind, const std::string& want, const std::string& found) {
    ::unlink(part.c_str());
    fail(ErrorKind::format, "checksum mismatch for '{}' from '{}': expected {} {}, found {}; the download was deleted, run "
         "`slm pull` again", t.name, t.repo_id, kind, want, found);
  };
  if (!expected.empty()) {
    if (result.sha256 != expected) mismatch("sha256", expected, result.sha256);
    result.verified = "sha256";
  } else if (!t.git_sha1.empty()) {
    const std::string found = git_blob_sha1_file(part);
    if (found != t.git_sha1) mismatch("git blob sha1", t.git_sha1, found);
    result.verified = "git-sha1";
  } else {
    result.verified = "size";
  }
  if (::fsync(fd) != 0) fail(ErrorKind::io, "cannot flush '{}': {}", part.string(), sys_error());
  if (::rename(part.c_str(), t.dest.c_str()) != 0) {
    fail(ErrorKind::io, "cannot move '{}' into place as '{}': {}", part.string(), t.dest.string(), sys_error());
  }
  return result;
}

}  // namespace

DownloadResult download_file(const HubClient& hub, const FileTarget& target, const DownloadOptions& options) {
  std::error_code ec;
  fs::create_directories(target.dest.parent_path(), ec);
  if (ec) fail(ErrorKind::io, "cannot create '{}': {}", target.dest.parent_path().string(), ec.message());
  const fs::path part = target.dest.string() + ".part";
  for (int round = 0; round < 1000; ++round) {
    if (auto r = existing(target)) return *r;
    Fd lock(::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (lock.fd < 0) fail(ErrorKind::io, "cannot open '{}': {}", part.string(), sys_error());
    if (::flock(lock.fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) fail(ErrorKind::io, "cannot lock '{}': {}", part.string(), sys_error());
      if (options.log) *options.log << fmt::format("{}: waiting for another download of the same file\n", target.name) << std::flush;
      while (::flock(lock.fd, LOCK_EX) != 0) {
        if (errno != EINTR) fail(ErrorKind::io, "cannot lock '{}': {}", part.string(), sys_error());
      }
    }
    // The holder before us may have finished (renamed the .part away) or given up (deleted it).
    if (!same_file(lock.fd, part)) continue;
    if (auto r = existing(target)) {
      ::unlink(part.c_str());
      return *r;
    }
    try {
      return transfer(hub, target, options, lock.fd, part);
    } catch (...) {
      struct stat st {};
      if (::fstat(lock.fd, &st) == 0 && st.st_size == 0) ::unlink(part.c_str());  // nothing worth resuming
      throw;
    }
  }
  fail(ErrorKind::io, "expected to lock '{}', found it replaced again and again", part.string());
}

}  // namespace slm::hub
