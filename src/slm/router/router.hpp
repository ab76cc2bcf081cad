// The tier router as a server::Provider: `slm serve --config router.yaml` puts it behind the HTTP
// front. Each request is routed by the configured policies to a tier, balanced over the tier's
// deployments, retried and passed on to fallback tiers, limited and budgeted, and logged.
#pragma once

#include <memory>
#include <string>

#include "slm/router/config.hpp"
#include "slm/router/local.hpp"
#include "slm/router/policy.hpp"
#include "slm/router/store.hpp"
#include "slm/server/provider.hpp"

namespace slm::router {

struct RouterOptions {
  // Makes in-process deployments (model: PATH); unset: such deployments are refused at start.
  LocalProviderFactory local_factory;
  // Environment lookup for api_key_env (tests replace it); default getenv.
  std::function<std::string(const std::string&)> getenv;
};

class Router : public server::Provider {
 public:
  explicit Router(RouterConfig config, RouterOptions options = {});
  ~Router() override;

  nlohmann::json models() override;
  void chat_completions(const nlohmann::json& request, const server::RequestInfo& info,
                        std::shared_ptr<server::ResponseSink> sink) override;
  void completions(const nlohmann::json& request, const server::RequestInfo& info,
                   std::shared_ptr<server::ResponseSink> sink) override;
  void embeddings(const nlohmann::json& request, const server::RequestInfo& info,
                  std::shared_ptr<server::ResponseSink> sink) override;
  // GET /v1/router/stats.
  bool handle_other(const std::string& method, const std::string& path, const nlohmann::json& request,
                    const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) override;
  std::string metrics_text() override;
  bool healthy() override;

  const RouterConfig& config() const;
  Store& store();
  const Policies& policies() const;
  // Live view of tiers and deployments (outstanding, latency, benched).
  nlohmann::json deployments_json();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace slm::router
