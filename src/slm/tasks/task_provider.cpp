#include "slm/tasks/task_provider.hpp"

#include <fmt/format.h>

#include "slm/server/errors.hpp"
#include "slm/tasks/task_endpoints.hpp"

namespace slm::tasks {
namespace {

endpoints::Job parse_task(const std::string& path, const nlohmann::json& request, const server::RequestInfo& info,
                          const TaskProviderOptions& options) {
  if (!request.is_object()) {
    server::throw_invalid("", fmt::format("expected a JSON object as the request body, found {}", request.type_name()));
  }
  if (path == "/v1/redact") return endpoints::parse_redact(request, options);
  if (path == "/v1/classify") return endpoints::parse_classify(request, options);
  if (path == "/v1/extract") {
    const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(info.body, nullptr, false);
    return endpoints::parse_extract(request, ordered.is_discarded() ? nullptr : &ordered, options);
  }
  return endpoints::parse_chunk(request, options);
}

}  // namespace

TaskProvider::TaskProvider(std::shared_ptr<server::Provider> inner, TaskProviderOptions options)
    : inner_(std::move(inner)), options_(std::move(options)) {
  if (!inner_) fail(ErrorKind::invalid_argument, "expected a provider to wrap, found none");
  if (options_.workers < 1) fail(ErrorKind::invalid_argument, "expected at least one worker, found {}", options_.workers);
  if (options_.window < 1) options_.window = 1;
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { work(); });
}

TaskProvider::~TaskProvider() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

bool TaskProvider::is_task_path(const std::string& path) {
  return path == "/v1/redact" || path == "/v1/classify" || path == "/v1/extract" || path == "/v1/chunk";
}

nlohmann::json TaskProvider::run(const std::string& path, const nlohmann::json& request, const server::RequestInfo& info,
                                 const std::shared_ptr<server::ResponseSink>& sink) {
  if (!is_task_path(path)) fail(ErrorKind::invalid_argument, "expected a task path, found '{}'", path);
  const endpoints::Job job = parse_task(path, request, info, options_);
  return job(endpoints::Context{*inner_, info, sink, options_});
}

bool TaskProvider::handle_other(const std::string& method, const std::string& path, const nlohmann::json& request,
                                const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) {
  if (!is_task_path(path)) return inner_->handle_other(method, path, request, info, std::move(sink));
  if (method != "POST") {
    throw server::ApiException(server::make_error(405, "invalid_request_error", fmt::format("{} {} is not supported; use POST", method, path)));
  }
  endpoints::Job job = parse_task(path, request, info, options_);
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= options_.max_waiting) {
      throw server::ApiException(server::make_error(429, "rate_limit_error",
                                                    fmt::format("{} task requests are waiting; retry later", queue_.size()), "",
                                                    "queue_full"));
    }
    queue_.push_back([this, job = std::move(job), info, sink] {
      if (sink->cancelled()) return;
      try {
        sink->finish_json(job(endpoints::Context{*inner_, info, sink, options_}));
      } catch (...) {
        sink->fail(server::error_from_current_exception());
      }
    });
  }
  wake_.notify_one();
  return true;
}

void TaskProvider::work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

}  // namespace slm::tasks
