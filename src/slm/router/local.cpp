#include "slm/router/local.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "slm/util/error.hpp"

namespace slm::router {
namespace {

// The sink a local provider answers into: each call becomes an event; cancel() comes from the router.
class QueueSink : public server::ResponseSink {
 public:
  explicit QueueSink(std::shared_ptr<EventQueue> queue) : queue_(std::move(queue)) {}

  void finish_json(const nlohmann::json& body) override {
    if (ended_.exchange(true)) return;
    release_callback();
    Event e;
    e.kind = Event::Kind::json;
    e.body = body;
    queue_->push(std::move(e));
  }
  void send_event(const std::string& data) override {
    if (ended_.load()) return;
    Event e;
    e.kind = Event::Kind::chunk;
    try {
      e.body = nlohmann::json::parse(data);
    } catch (const nlohmann::json::exception&) {
      if (ended_.exchange(true)) return;
      release_callback();
      queue_->push(Event::error(500, "in-process model sent a malformed event", true));
      return;
    }
    queue_->push(std::move(e));
  }
  void end_stream() override {
    if (ended_.exchange(true)) return;
    release_callback();
    queue_->push(Event::of(Event::Kind::done));
  }
  void fail(const server::ApiError& error) override {
    if (ended_.exchange(true)) return;
    release_callback();
    queue_->push(Event::error(error.status, error.message, retryable_status(error.status), error.type));
  }
  bool cancelled() const override { return cancelled_.load(); }
  void on_cancel(std::function<void()> callback) override {
    std::function<void()> run_now;
    {
      std::lock_guard lock(mutex_);
      if (cancelled_.load()) run_now = std::move(callback);
      else if (!ended_.load()) callback_ = std::move(callback);
    }
    if (run_now) run_now();
  }
  // The answer is complete: nothing to cancel any more. Dropping the provider's callback now, while
  // the provider is certainly alive, keeps whatever it holds from outliving it.
  void release_callback() {
    std::function<void()> old;
    std::lock_guard lock(mutex_);
    old.swap(callback_);
  }
  void cancel() {
    std::function<void()> cb;
    {
      std::lock_guard lock(mutex_);
      if (cancelled_.exchange(true)) return;
      cb = std::move(callback_);
    }
    ended_.store(true);
    if (cb) cb();
  }

 private:
  std::shared_ptr<EventQueue> queue_;
  std::atomic<bool> ended_{false};
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  std::function<void()> callback_;
};

class LocalCall : public CallHandle {
 public:
  explicit LocalCall(std::shared_ptr<QueueSink> sink) : sink_(std::move(sink)) {}
  void cancel() override { sink_->cancel(); }

 private:
  std::shared_ptr<QueueSink> sink_;
};

void dispatch(server::Provider& provider, Endpoint endpoint, const nlohmann::json& request, const server::RequestInfo& info,
              std::shared_ptr<server::ResponseSink> sink) {
  try {
    switch (endpoint) {
      case Endpoint::chat: provider.chat_completions(request, info, sink); break;
      case Endpoint::completions: provider.completions(request, info, sink); break;
      case Endpoint::embeddings: provider.embeddings(request, info, sink); break;
    }
  } catch (const std::exception& e) {
    server::ApiError err;
    err.status = 500;
    err.message = e.what();
    sink->fail(err);
  }
}

}  // namespace

std::shared_ptr<CallHandle> ProviderDeployment::start(Endpoint endpoint, const nlohmann::json& request, const CallOptions& options,
                                                      std::shared_ptr<EventQueue> queue) {
  auto sink = std::make_shared<QueueSink>(std::move(queue));
  nlohmann::json body = request;
  if (!model_.empty()) body["model"] = model_;
  if (options.stream) {
    body["stream"] = true;
    body["stream_options"]["include_usage"] = true;
  } else {
    body.erase("stream");
    body.erase("stream_options");
  }
  static std::atomic<uint64_t> counter{0};
  server::RequestInfo info;
  info.request_id = "route-" + std::to_string(++counter);
  dispatch(*provider_, endpoint, body, info, sink);
  return std::make_shared<LocalCall>(sink);
}

nlohmann::json call_provider_blocking(server::Provider& provider, Endpoint endpoint, const nlohmann::json& request,
                                      double timeout_s) {
  struct Waiter : server::ResponseSink {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    nlohmann::json body;
    std::string error;
    void finish_json(const nlohmann::json& b) override {
      std::lock_guard lock(mutex);
      if (done) return;
      body = b;
      done = true;
      cv.notify_all();
    }
    void send_event(const std::string&) override {}
    void end_stream() override { fail_with("expected a JSON answer, found a stream"); }
    void fail(const server::ApiError& e) override { fail_with(e.message); }
    void fail_with(const std::string& m) {
      std::lock_guard lock(mutex);
      if (done) return;
      error = m.empty() ? "failed" : m;
      done = true;
      cv.notify_all();
    }
    bool cancelled() const override { return false; }
    void on_cancel(std::function<void()>) override {}
  };
  auto waiter = std::make_shared<Waiter>();
  server::RequestInfo info;
  info.request_id = "route-embed";
  dispatch(provider, endpoint, request, info, waiter);
  std::unique_lock lock(waiter->mutex);
  if (!waiter->cv.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return waiter->done; })) {
    fail(ErrorKind::io, "expected an answer from the in-process model within {} s, found none", timeout_s);
  }
  if (!waiter->error.empty()) fail(ErrorKind::io, "in-process model failed: {}", waiter->error);
  return waiter->body;
}

}  // namespace slm::router
