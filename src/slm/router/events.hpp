// What a deployment answers, as a queue of events the router's request coroutine awaits: the whole
// JSON answer, one streamed chunk at a time, the end of a stream, or an error. Deployments push from
// any thread; the router pops on its own (single-threaded) io_context.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace slm::router {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Event {
  enum class Kind { json, chunk, done, error };
  Kind kind = Kind::error;
  nlohmann::json body;    // json: the whole answer; chunk: one parsed server-sent event
  int status = 0;         // error: the HTTP status (0: connection, timeout or protocol error)
  std::string message;    // error: what went wrong
  std::string type;       // error: OpenAI error type when the deployment gave one
  bool retryable = false; // error: another try (or tier) may succeed

  static Event of(Kind kind) {
    Event e;
    e.kind = kind;
    return e;
  }
  static Event error(int status, std::string message, bool retryable, std::string type = "") {
    Event e;
    e.kind = Kind::error;
    e.status = status;
    e.message = std::move(message);
    e.retryable = retryable;
    e.type = std::move(type);
    return e;
  }
};

// HTTP statuses worth another try: 408, 429 and 5xx.
inline bool retryable_status(int status) { return status == 408 || status == 429 || status >= 500; }

class EventQueue : public std::enable_shared_from_this<EventQueue> {
 public:
  explicit EventQueue(asio::any_io_executor executor) : executor_(executor), timer_(executor) {}

  void push(Event e) {
    {
      std::lock_guard lock(mutex_);
      events_.push_back(std::move(e));
    }
    asio::post(executor_, [self = shared_from_this()] { self->timer_.cancel(); });
  }

  // The next event, or a retryable timeout error at `deadline`. Call from the executor's thread only.
  asio::awaitable<Event> next(Clock::time_point deadline) {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (!events_.empty()) {
          Event e = std::move(events_.front());
          events_.pop_front();
          co_return e;
        }
      }
      if (Clock::now() >= deadline) co_return Event::error(0, "timed out waiting for the deployment", true);
      timer_.expires_at(deadline);
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

 private:
  asio::any_io_executor executor_;
  asio::steady_timer timer_;
  std::mutex mutex_;
  std::deque<Event> events_;
};

// One call in flight at a deployment; cancel() from any thread stops it (no further events matter).
class CallHandle {
 public:
  virtual ~CallHandle() = default;
  virtual void cancel() = 0;
};

enum class Endpoint { chat, completions, embeddings };
const char* endpoint_path(Endpoint endpoint);  // "/chat/completions", ...

struct CallOptions {
  bool stream = false;
  double connect_timeout_s = 5;
  double first_byte_timeout_s = 60;
  double timeout_s = 60;
};

// One deployment of a tier: an in-process provider or an upstream HTTP endpoint.
class Deployment {
 public:
  virtual ~Deployment() = default;
  // Starts `request` (already rewritten for this deployment); events go to `queue`.
  virtual std::shared_ptr<CallHandle> start(Endpoint endpoint, const nlohmann::json& request, const CallOptions& options,
                                            std::shared_ptr<EventQueue> queue) = 0;
};

}  // namespace slm::router
