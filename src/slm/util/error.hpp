// Errors: one exception type with a kind, carrying what was expected and what was found.
// The library throws these and never calls exit(); the CLI and the server map them to exit codes
// and HTTP statuses in one place.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace slm {

enum class ErrorKind {
  invalid_argument,  // the caller passed something wrong (a flag, a request field)
  format,            // a file's bytes do not follow its format
  not_found,         // a file, tensor, key or model that does not exist
  unsupported,       // valid input that slm does not handle (yet)
  io,                // the operating system refused (open, read, mmap, write)
  out_of_range,      // a size or index past a limit (context length, size limits)
  internal,          // a bug in slm
};

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace slm
