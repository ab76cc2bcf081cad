#include "slm/hub/http.hpp"

#include <curl/curl.h>

#include <cctype>
#include <exception>
#include <memory>
#include <mutex>

#include "slm/util/error.hpp"

namespace slm::hub {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// State of one request (one hop of a redirect chain).
struct Transfer {
  CURL* handle = nullptr;
  HttpHeaders headers;
  bool streaming = false;  // hand 2xx bodies to the callbacks
  bool started = false;
  long status = 0;
  const std::function<void(long, const HttpHeaders&)>* on_start = nullptr;
  const std::function<void(const char*, size_t)>* on_data = nullptr;
  std::string* memory = nullptr;  // get(): the body
  size_t max_body = 0;
  std::string error_body;
  uint64_t body_bytes = 0;
  std::exception_ptr error;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->headers.clear();  // a new response (after 1xx)
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    t->headers[trim(name)] = trim(line.substr(colon + 1));
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  try {
    if (!t->started) {
      t->started = true;
      curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &t->status);
      if (t->status >= 200 && t->status < 300 && t->streaming && t->on_start) (*t->on_start)(t->status, t->headers);
    }
    if (t->status >= 300 && t->status < 400) return bytes;  // a redirect's body
    if (t->status < 200 || t->status >= 300) {
      if (t->error_body.size() < 4096) t->error_body.append(data, std::min<size_t>(bytes, 4096 - t->error_body.size()));
      return bytes;
    }
    if (t->memory) {
      if (t->memory->size() + bytes > t->max_body) {
        fail(ErrorKind::out_of_range, "expected a response of at most {} bytes, found more", t->max_body);
      }
      t->memory->append(data, bytes);
    } else if (t->on_data) {
      (*t->on_data)(data, bytes);
    }
    t->body_bytes += bytes;
    return bytes;
  } catch (...) {
    t->error = std::current_exception();
    return 0;  // any count other than `bytes` stops the transfer
  }
}

bool is_redirect(long status) { return status == 301 || status == 302 || status == 303 || status == 307 || status == 308; }

}  // namespace

std::string origin_of(const std::string& url) {
  global_init();
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "";
  char* scheme = nullptr;
  char* host = nullptr;
  char* port = nullptr;
  std::string out;
  if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    std::string h = host;
    for (char& c : h) c = char(std::tolower(static_cast<unsigned char>(c)));
    out = std::string(scheme) + "://" + h + ":" + port;
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  return out;
}

std::string url_encode_path(const std::string& path, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += char(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) { global_init(); }

namespace {

// Runs one GET hop; returns the curl code. Fills t.status.
CURLcode perform_hop(const HttpOptions& options, const std::string& url, uint64_t range_start, Transfer& t,
                     std::string& redirect_to, std::string& curl_error) {
  std::unique_ptr<CURL, EasyDeleter> h(curl_easy_init());
  if (!h) fail(ErrorKind::internal, "expected a curl handle, found an allocation failure");
  t.handle = h.get();
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&](const std::string& line) {
    curl_slist* l = curl_slist_append(headers.get(), line.c_str());
    if (!l) fail(ErrorKind::internal, "curl_slist_append failed");
    headers.release();
    headers.reset(l);
  };
  if (!options.bearer_token.empty() && !options.auth_origin.empty() && origin_of(url) == options.auth_origin) {
    add_header("Authorization: Bearer " + options.bearer_token);
  }
  add_header("Accept-Encoding: identity");
  curl_easy_setopt(h.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(h.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h.get(), CURLOPT_USERAGENT, "slm/0.1.0");
  curl_easy_setopt(h.get(), CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h.get(), CURLOPT_CONNECTTIMEOUT, options.connect_timeout_s);
  curl_easy_setopt(h.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h.get(), CURLOPT_LOW_SPEED_TIME, options.stall_timeout_s);
  curl_easy_setopt(h.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h.get(), CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h.get(), CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &t);
  const std::string range = std::to_string(range_start) + "-";  // "Range: bytes=N-"
  if (range_start > 0) curl_easy_setopt(h.get(), CURLOPT_RANGE, range.c_str());
  const CURLcode code = curl_easy_perform(h.get());
  if (t.error) std::rethrow_exception(t.error);
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &t.status);
  if (code != CURLE_OK) curl_error = errbuf[0] ? errbuf : curl_easy_strerror(code);
  redirect_to.clear();
  if (code == CURLE_OK && is_redirect(t.status)) {
    char* next = nullptr;
    if (curl_easy_getinfo(h.get(), CURLINFO_REDIRECT_URL, &next) == CURLE_OK && next) redirect_to = next;
  }
  t.handle = nullptr;
  return code;
}

}  // namespace

StreamResult HttpClient::stream(const std::string& url, uint64_t range_start,
                                const std::function<void(long, const HttpHeaders&)>& on_start,
                                const std::function<void(const char*, size_t)>& on_data) const {
  StreamResult result;
  std::string current = url;
  for (int hop = 0;; ++hop) {
    Transfer t;
    t.streaming = true;
    t.on_start = &on_start;
    t.on_data = &on_data;
    std::string next, curl_error;
    perform_hop(options_, current, range_start, t, next, curl_error);
    if (hop == 0) result.first_headers = t.headers;
    result.status = t.status;
    result.headers = t.headers;
    result.url = current;
    result.error_body = t.error_body;
    result.body_bytes = t.body_bytes;
    result.curl_error = curl_error;
    if (!curl_error.empty()) return result;
    if (is_redirect(t.status)) {
      if (next.empty()) fail(ErrorKind::io, "expected a Location header with HTTP {} from {}, found none", t.status, current);
      if (hop + 1 > options_.max_redirects) {
        fail(ErrorKind::io, "expected at most {} redirects fetching {}, found more", options_.max_redirects, url);
      }
      current = next;
      continue;
    }
    if (t.status >= 200 && t.status < 300 && !t.started && on_start) on_start(t.status, t.headers);
    return result;
  }
}

HttpResponse HttpClient::get(const std::string& url, size_t max_body) const {
  HttpResponse response;
  std::string current = url;
  for (int hop = 0;; ++hop) {
    Transfer t;
    std::string body;
    t.memory = &body;
    t.max_body = max_body;
    std::string next, curl_error;
    perform_hop(options_, current, 0, t, next, curl_error);
    if (!curl_error.empty()) fail(ErrorKind::io, "GET {} failed: {}", current, curl_error);
    if (hop == 0) response.first_headers = t.headers;
    if (is_redirect(t.status)) {
      if (next.empty()) fail(ErrorKind::io, "expected a Location header with HTTP {} from {}, found none", t.status, current);
      if (hop + 1 > options_.max_redirects) {
        fail(ErrorKind::io, "expected at most {} redirects fetching {}, found more", options_.max_redirects, url);
      }
      current = next;
      continue;
    }
    response.status = t.status;
    response.headers = t.headers;
    response.body = (t.status >= 200 && t.status < 300) ? std::move(body) : t.error_body;
    response.url = current;
    return response;
  }
}

}  // namespace slm::hub
