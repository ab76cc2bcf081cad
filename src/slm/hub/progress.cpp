#include "slm/hub/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

namespace slm::hub {

ProgressStyle default_progress_style() { return isatty(STDERR_FILENO) ? ProgressStyle::bar : ProgressStyle::lines; }

std::string human_bytes(uint64_t bytes) {
  const double b = double(bytes);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", bytes);
}

Progress::Progress(std::ostream* out, ProgressStyle style, std::string name, int64_t total, double line_interval_s)
    : out_(out), style_(out ? style : ProgressStyle::none), name_(std::move(name)), total_(total), interval_s_(line_interval_s) {}

void Progress::start(uint64_t already) {
  base_ = already;
  start_ = last_ = std::chrono::steady_clock::now();
  if (style_ == ProgressStyle::lines && already > 0 && out_) {
    *out_ << fmt::format("{}: resuming at {}\n", name_, human_bytes(already)) << std::flush;
  }
}

void Progress::update(uint64_t done) {
  if (style_ == ProgressStyle::none) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (style_ == ProgressStyle::bar ? 0.1 : interval_s_)) return;
  last_ = now;
  draw(done, false);
}

void Progress::finish(uint64_t done) {
  if (style_ == ProgressStyle::none) return;
  draw(done, true);
}

void Progress::draw(uint64_t done, bool final) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? double(done - std::min(done, base_)) / elapsed : 0.0;
  std::string line;
  if (total_ > 0) {
    const double frac = std::min(1.0, double(done) / double(total_));
    std::string eta = "";
    if (!final && rate > 0) {
      const auto s = int64_t(double(uint64_t(total_) - std::min<uint64_t>(done, uint64_t(total_))) / rate);
      eta = fmt::format("  eta {}:{:02}", s / 60, s % 60);
    }
    if (style_ == ProgressStyle::bar) {
      const int width = 24, filled = int(frac * width);
      line = fmt::format("{} [{}{}] {:3.0f}% {} / {}  {}/s{}", name_, std::string(size_t(filled), '#'),
                         std::string(size_t(width - filled), '.'), frac * 100, human_bytes(done), human_bytes(uint64_t(total_)),
                         human_bytes(uint64_t(rate)), eta);
    } else {
      line = fmt::format("{}: {:3.0f}% {} / {}  {}/s{}", name_, frac * 100, human_bytes(done), human_bytes(uint64_t(total_)),
                         human_bytes(uint64_t(rate)), eta);
    }
  } else {
    line = fmt::format("{}: {}  {}/s", name_, human_bytes(done), human_bytes(uint64_t(rate)));
  }
  if (style_ == ProgressStyle::bar) {
    *out_ << "\r" << line << "\x1b[K";
    if (final) *out_ << "\n";
  } else {
    *out_ << line << "\n";
  }
  *out_ << std::flush;
  drawn_ = true;
}

}  // namespace slm::hub
