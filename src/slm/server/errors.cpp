#include "slm/server/errors.hpp"

#include <nlohmann/json.hpp>

namespace slm::server {

nlohmann::json ApiError::to_json() const {
  nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

ApiError make_error(int status, std::string type, std::string message, std::string param, std::string code) {
  ApiError e;
  e.status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

void throw_invalid(const std::string& param, const std::string& message, const std::string& code) {
  throw ApiException(make_error(400, "invalid_request_error", message, param, code));
}

ApiError error_from(const slm::Error& e) {
  switch (e.kind()) {
    case ErrorKind::invalid_argument:
    case ErrorKind::format:
      return make_error(400, "invalid_request_error", e.what());
    case ErrorKind::unsupported:
      return make_error(400, "invalid_request_error", e.what(), "", "unsupported");
    case ErrorKind::out_of_range:
      return make_error(400, "invalid_request_error", e.what(), "", "out_of_range");
    case ErrorKind::not_found:
      return make_error(404, "not_found_error", e.what(), "", "not_found");
    case ErrorKind::io:
    case ErrorKind::internal:
      break;
  }
  return make_error(500, "server_error", e.what());
}

ApiError error_from_current_exception() {
  try {
    throw;
  } catch (const ApiException& e) {
    return e.error();
  } catch (const slm::Error& e) {
    return error_from(e);
  } catch (const nlohmann::json::exception& e) {
    return make_error(400, "invalid_request_error", std::string("invalid request: ") + e.what());
  } catch (const std::bad_alloc&) {
    return make_error(500, "server_error", "out of memory");
  } catch (const std::exception& e) {
    return make_error(500, "server_error", e.what());
  } catch (...) {
    return make_error(500, "server_error", "unknown error");
  }
}

}  // namespace slm::server
