// Blocking calls from a task to the Provider behind it (the engine or the tier router): the task
// builds an OpenAI request body, the provider answers through a sink that captures the answer, and
// the calling thread waits for it. Never call these on the HTTP front's thread.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "slm/server/provider.hpp"

namespace slm::tasks {

enum class ProviderRoute { completions, chat_completions, embeddings };

// Sends `body` (non-streamed) to `inner` on `route` and returns the answer's JSON body. The request
// has its own id (the caller's with a suffix) and carries the caller's headers and API key, the task tag `task` as the `x-slm-task` header (unless
// the caller sent one) and as `metadata.task` in the body, so a router's rules can route it. When
// `outer` (the client's sink) goes away, the inner request is cancelled with it. An error answer is
// thrown as server::ApiException, unchanged.
nlohmann::json call_provider(server::Provider& inner, ProviderRoute route, nlohmann::ordered_json body,
                             const server::RequestInfo& info, const std::string& task,
                             const std::shared_ptr<server::ResponseSink>& outer);

// The text of a completions or chat completions answer's choice `index` ("" when absent).
std::string choice_text(const nlohmann::json& answer, size_t index = 0);

}  // namespace slm::tasks
