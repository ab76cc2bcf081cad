// An in-process deployment: any slm::server::Provider (the engine's) called through an internal
// sink whose answers become router events.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "slm/router/events.hpp"
#include "slm/server/provider.hpp"

namespace slm::router {

class ProviderDeployment : public Deployment {
 public:
  // model: replaces the request's model ("" keeps it).
  ProviderDeployment(std::shared_ptr<server::Provider> provider, std::string model)
      : provider_(std::move(provider)), model_(std::move(model)) {}
  std::shared_ptr<CallHandle> start(Endpoint endpoint, const nlohmann::json& request, const CallOptions& options,
                                    std::shared_ptr<EventQueue> queue) override;
  server::Provider& provider() { return *provider_; }

 private:
  std::shared_ptr<server::Provider> provider_;
  std::string model_;
};

// Makes the provider for `model: PATH_OR_NAME` deployments; set by whoever links the engine's
// provider in (the serve command). Unset: in-process deployments are refused at start.
using LocalProviderFactory = std::function<std::shared_ptr<server::Provider>(const std::string& model_path)>;

// Runs a request on a provider and waits for the whole JSON answer (embeddings for the semantic and
// learned policies). Throws Error(io) with the provider's message on failure.
nlohmann::json call_provider_blocking(server::Provider& provider, Endpoint endpoint, const nlohmann::json& request,
                                      double timeout_s);

}  // namespace slm::router
