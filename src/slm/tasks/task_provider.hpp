// The task endpoints over HTTP: a server::Provider that answers POST /v1/redact, /v1/classify,
// /v1/extract and /v1/chunk and hands every other request to the provider it wraps (the engine or
// the tier router). The model parts of each task are OpenAI requests to that inner provider
// (completions with echo and log-probabilities for classify, JSON-schema constrained completions for
// extract and model entities, embeddings for semantic chunks), tagged with the task's name so a
// router's rules can send each task to a tier. Request and response shapes: docs/api.md.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "slm/server/provider.hpp"

namespace slm {
class Tokenizer;
}

namespace slm::tasks {

struct TaskProviderOptions {
  // The tokenizer that measures /v1/chunk's chunks: a local model's, by the request's "model" (""
  // when it named none; any fallback is the lookup's choice). Null, or a null answer: /v1/chunk
  // answers 400 unsupported.
  std::function<const Tokenizer*(const std::string& model)> tokenizer;
  int workers = 4;          // task requests worked on at once (each waits on its inner requests)
  size_t max_waiting = 256; // task requests waiting beyond those; more: 429
  size_t max_inputs = 256;  // texts in one request's "input"
  int window = 8;           // texts of one request whose inner requests are in flight at once
};

class TaskProvider : public server::Provider {
 public:
  explicit TaskProvider(std::shared_ptr<server::Provider> inner, TaskProviderOptions options = {});
  ~TaskProvider() override;

  nlohmann::json models() override { return inner_->models(); }
  void chat_completions(const nlohmann::json& request, const server::RequestInfo& info,
                        std::shared_ptr<server::ResponseSink> sink) override {
    inner_->chat_completions(request, info, std::move(sink));
  }
  void completions(const nlohmann::json& request, const server::RequestInfo& info,
                   std::shared_ptr<server::ResponseSink> sink) override {
    inner_->completions(request, info, std::move(sink));
  }
  void embeddings(const nlohmann::json& request, const server::RequestInfo& info,
                  std::shared_ptr<server::ResponseSink> sink) override {
    inner_->embeddings(request, info, std::move(sink));
  }
  // POST /v1/redact, /v1/classify, /v1/extract, /v1/chunk: the request is checked at once (400
  // naming the field), then answered from a worker thread. Anything else goes to the inner provider.
  bool handle_other(const std::string& method, const std::string& path, const nlohmann::json& request,
                    const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) override;
  std::string metrics_text() override { return inner_->metrics_text(); }
  bool healthy() override { return inner_->healthy(); }

  // True for the four task paths.
  static bool is_task_path(const std::string& path);
  // One task request answered on the calling thread (tests, and the workers): the response body, or
  // server::ApiException. `sink` (may be null) is the client's, for cancellation.
  nlohmann::json run(const std::string& path, const nlohmann::json& request, const server::RequestInfo& info,
                     const std::shared_ptr<server::ResponseSink>& sink = nullptr);

 private:
  void work();

  std::shared_ptr<server::Provider> inner_;
  TaskProviderOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace slm::tasks
