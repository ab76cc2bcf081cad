// OpenAI-shaped errors: the exception request validation throws, and the one place where slm::Error
// kinds become HTTP statuses.
#pragma once

#include <exception>
#include <string>

#include "slm/server/provider.hpp"
#include "slm/util/error.hpp"

namespace slm::server {

// Thrown while validating a request; the front or the provider sends `error` as it is.
class ApiException : public std::exception {
 public:
  explicit ApiException(ApiError error) : error_(std::move(error)) {}
  const ApiError& error() const { return error_; }
  const char* what() const noexcept override { return error_.message.c_str(); }

 private:
  ApiError error_;
};

ApiError make_error(int status, std::string type, std::string message, std::string param = "", std::string code = "");

// 400 invalid_request_error naming the field.
[[noreturn]] void throw_invalid(const std::string& param, const std::string& message, const std::string& code = "");

// The mapping of slm::Error kinds to statuses: invalid_argument, format, unsupported -> 400;
// out_of_range -> 400 (context_length_exceeded when `context` says so); not_found -> 404; io and
// internal -> 500.
ApiError error_from(const slm::Error& e);
// Inside a catch block: ApiException, slm::Error, nlohmann::json errors and anything else.
ApiError error_from_current_exception();

}  // namespace slm::server
