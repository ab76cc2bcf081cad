#include "slm/tasks/provider_call.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>

#include "slm/server/errors.hpp"

namespace slm::tasks {
namespace {

using server::ApiError;

// Holds the one answer of an inner request; cancellation follows the client's sink.
class CaptureSink : public server::ResponseSink {
 public:
  explicit CaptureSink(std::shared_ptr<server::ResponseSink> outer) : outer_(std::move(outer)) {}

  void finish_json(const nlohmann::json& body) override { settle(body, std::nullopt); }
  void send_event(const std::string&) override {}
  void end_stream() override {
    settle({}, server::make_error(500, "server_error", "expected a JSON answer, found a stream"));
  }
  void fail(const ApiError& error) override { settle({}, error); }
  bool cancelled() const override { return outer_ && outer_->cancelled(); }
  void on_cancel(std::function<void()> callback) override {
    if (outer_) outer_->on_cancel(std::move(callback));
  }

  std::future<std::pair<nlohmann::json, std::optional<ApiError>>> future() { return promise_.get_future(); }

 private:
  void settle(const nlohmann::json& body, std::optional<ApiError> error) {
    std::lock_guard lock(mutex_);
    if (done_) return;
    done_ = true;
    promise_.set_value({body, std::move(error)});
  }

  std::shared_ptr<server::ResponseSink> outer_;
  std::mutex mutex_;
  bool done_ = false;
  std::promise<std::pair<nlohmann::json, std::optional<ApiError>>> promise_;
};

}  // namespace

nlohmann::json call_provider(server::Provider& inner, ProviderRoute route, nlohmann::ordered_json body,
                             const server::RequestInfo& info, const std::string& task,
                             const std::shared_ptr<server::ResponseSink>& outer) {
  server::RequestInfo sub = info;
  // Each inner request is its own request (logs and accounting key on the id).
  static std::atomic<uint64_t> next{1};
  sub.request_id = (info.request_id.empty() ? std::string("task") : info.request_id) + "-" + std::to_string(next.fetch_add(1));
  if (!task.empty()) {
    sub.headers.try_emplace("x-slm-task", task);
    if (!body.contains("metadata") || !body["metadata"].is_object()) body["metadata"] = nlohmann::ordered_json::object();
    if (!body["metadata"].contains("task")) body["metadata"]["task"] = task;
  }
  sub.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const nlohmann::json request = nlohmann::json::parse(sub.body);
  auto sink = std::make_shared<CaptureSink>(outer);
  auto answer = sink->future();
  try {
    switch (route) {
      case ProviderRoute::completions: inner.completions(request, sub, sink); break;
      case ProviderRoute::chat_completions: inner.chat_completions(request, sub, sink); break;
      case ProviderRoute::embeddings: inner.embeddings(request, sub, sink); break;
    }
  } catch (...) {
    sink->fail(server::error_from_current_exception());
  }
  // A client that went away ends the wait even if the inner provider never answers a cancelled
  // request; the capturing sink outlives this call for whatever still holds it.
  while (answer.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (outer && outer->cancelled()) {
      throw server::ApiException(server::make_error(499, "invalid_request_error", "the client closed the connection"));
    }
  }
  auto [json, error] = answer.get();
  if (error) throw server::ApiException(*error);
  return json;
}

std::string choice_text(const nlohmann::json& answer, size_t index) {
  if (!answer.contains("choices") || !answer["choices"].is_array()) return {};
  for (const auto& c : answer["choices"]) {
    if (c.value("index", size_t(0)) != index) continue;
    if (c.contains("text") && c["text"].is_string()) return c["text"].get<std::string>();
    if (c.contains("message") && c["message"].is_object() && c["message"].contains("content") &&
        c["message"]["content"].is_string()) {
      return c["message"]["content"].get<std::string>();
    }
  }
  return {};
}

}  // namespace slm::tasks
