// An OpenAI-compatible upstream over HTTP/1.1 (Boost.Beast; https through OpenSSL): kept-alive
// connections reused across calls, server-sent events passed on one at a time as they arrive,
// deadlines for connecting, the first byte and the whole answer, and cancellation that closes the
// connection at once.
#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

#include "slm/router/events.hpp"

namespace slm::router {

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string base_path;  // without a trailing slash, e.g. "/v1"
  // http[s]://host[:port][/path]; throws Error(invalid_argument).
  static Url parse(const std::string& text);
};

struct UpstreamStats {
  uint64_t connections_opened = 0;
  uint64_t requests = 0;
};

// A deployment reached over HTTP. Lives on (and must be used from) one io_context's thread, except
// CallHandle::cancel, which may be called from anywhere.
class UpstreamDeployment : public Deployment, public std::enable_shared_from_this<UpstreamDeployment> {
 public:
  // bearer: the API key sent as "Authorization: Bearer ..." ("" none); model: replaces the request's
  // model ("" keeps it).
  static std::shared_ptr<UpstreamDeployment> create(asio::io_context& io, const Url& url, std::string bearer, std::string model);
  ~UpstreamDeployment() override;

  std::shared_ptr<CallHandle> start(Endpoint endpoint, const nlohmann::json& request, const CallOptions& options,
                                    std::shared_ptr<EventQueue> queue) override;
  UpstreamStats stats() const;

  struct Impl;

 private:
  UpstreamDeployment() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm::router
