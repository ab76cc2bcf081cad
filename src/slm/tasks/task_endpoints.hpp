// The four task endpoints behind TaskProvider: each checks its request body (400
// invalid_request_error naming the field, thrown as server::ApiException) and returns the job that
// answers it, run later on a worker thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "slm/server/provider.hpp"
#include "slm/tasks/task_provider.hpp"

namespace slm::tasks::endpoints {

struct Context {
  server::Provider& inner;
  const server::RequestInfo& info;
  std::shared_ptr<server::ResponseSink> sink;  // the client's (may be null)
  const TaskProviderOptions& options;
};

using Job = std::function<nlohmann::json(const Context&)>;

Job parse_redact(const nlohmann::json& request, const TaskProviderOptions& options);
Job parse_classify(const nlohmann::json& request, const TaskProviderOptions& options);
// `ordered`: the same body with key order kept (the schema's property order), or null.
Job parse_extract(const nlohmann::json& request, const nlohmann::ordered_json* ordered, const TaskProviderOptions& options);
Job parse_chunk(const nlohmann::json& request, const TaskProviderOptions& options);

}  // namespace slm::tasks::endpoints
