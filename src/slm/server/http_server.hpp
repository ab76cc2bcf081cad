// The HTTP front: Boost.Beast HTTP/1.1 on one I/O thread (asio coroutines), keep-alive, body size
// and time limits, optional API key, OpenAI-shaped errors, server-sent events for streams. It
// parses requests and hands them to a Provider; everything about models lives behind that.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "slm/server/metrics.hpp"
#include "slm/server/provider.hpp"

namespace slm::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                        // 0: a free port (see HttpServer::listen)
  std::string api_key;                         // "": no key needed
  size_t max_body_bytes = size_t(8) << 20;     // larger bodies: 413
  size_t max_header_bytes = size_t(64) << 10;  // larger headers: 431
  std::chrono::milliseconds header_timeout{30000};  // waiting for a request's headers (idle keep-alive too)
  std::chrono::milliseconds body_timeout{60000};    // reading a request's body
  std::chrono::milliseconds write_timeout{60000};   // one write to the client
  bool handle_signals = false;                 // SIGINT/SIGTERM stop run()
};

class HttpServer {
 public:
  HttpServer(std::shared_ptr<Provider> provider, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; returns the port (the one the system chose when options.port is 0).
  // Throws Error(io) when the address cannot be bound.
  uint16_t listen();
  // Serves until stop() (or a signal when handle_signals); blocks the calling thread.
  void run();
  // Thread-safe; run() returns soon after.
  void stop();
  HttpMetrics& metrics();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The route label a path is counted under in metrics ("other" for unknown paths).
std::string route_label(const std::string& path);

}  // namespace slm::server
