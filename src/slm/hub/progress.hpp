// Download progress on a stream: a bar redrawn in place on a terminal, else a line every few
// seconds (for logs), and a last line when done.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace slm::hub {

enum class ProgressStyle { none, bar, lines };

// `bar` when standard error is a terminal, else `lines`.
ProgressStyle default_progress_style();

class Progress {
 public:
  Progress(std::ostream* out, ProgressStyle style, std::string name, int64_t total, double line_interval_s = 5.0);
  void start(uint64_t already);  // bytes present before this transfer (resumed)
  void update(uint64_t done);
  void finish(uint64_t done);

 private:
  void draw(uint64_t done, bool final);

  std::ostream* out_;
  ProgressStyle style_;
  std::string name_;
  int64_t total_;
  double interval_s_;
  uint64_t base_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false;
};

std::string human_bytes(uint64_t bytes);

}  // namespace slm::hub
