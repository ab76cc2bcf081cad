// A small HTTP client over libcurl for the hub: GET with redirects followed by hand, so that the
// Authorization header goes only to the origin it belongs to (never to a CDN the hub redirects to).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace slm::hub {

using HttpHeaders = std::map<std::string, std::string>;  // lowercase names

struct HttpOptions {
  std::string bearer_token;   // sent as "Authorization: Bearer ..." to auth_origin only
  std::string auth_origin;    // "scheme://host:port" of the hub (see origin_of)
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;  // abort when nothing arrives for this long
  int max_redirects = 10;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  HttpHeaders headers;        // of the final response
  HttpHeaders first_headers;  // of the first response (the hub's, before any redirect)
  std::string url;            // the final URL
};

// What a streamed GET ended with. `curl_error` is empty when the transfer completed.
struct StreamResult {
  long status = 0;
  HttpHeaders headers;
  HttpHeaders first_headers;
  std::string url;
  std::string error_body;  // the start of a non-2xx body
  std::string curl_error;
  uint64_t body_bytes = 0;  // bytes handed to on_data
};

// "scheme://host:port" with the default port filled in and the host lowercased; "" if unparsable.
std::string origin_of(const std::string& url);
// Percent-encodes a path (keeping '/') or a single path segment (encoding '/').
std::string url_encode_path(const std::string& path, bool keep_slash = true);

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);

  // GET into memory; a body over max_body bytes is an error. Throws Error(io) on transport errors;
  // any HTTP status is returned.
  HttpResponse get(const std::string& url, size_t max_body = size_t(64) << 20) const;

  // GET streaming the final 2xx body: on_start(status, headers) runs once before the first byte (and
  // for an empty body); on_data receives the bytes. Either may throw: the transfer stops and the
  // exception propagates. `range_start` > 0 asks for "Range: bytes=N-". Transport errors (a cut
  // connection, a stall) come back in curl_error, not as exceptions.
  StreamResult stream(const std::string& url, uint64_t range_start,
                      const std::function<void(long status, const HttpHeaders& headers)>& on_start,
                      const std::function<void(const char* data, size_t n)>& on_data) const;

  const HttpOptions& options() const { return options_; }

 private:
  HttpOptions options_;
};

}  // namespace slm::hub
