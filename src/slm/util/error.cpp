#include "slm/util/error.hpp"

namespace slm {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_argument: return "invalid_argument";
    case ErrorKind::format: return "format";
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::unsupported: return "unsupported";
    case ErrorKind::io: return "io";
    case ErrorKind::out_of_range: return "out_of_range";
    case ErrorKind::internal: return "internal";
  }
  return "unknown";
}

}  // namespace slm
