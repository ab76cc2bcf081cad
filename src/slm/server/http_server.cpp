#include "slm/server/http_server.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "slm/server/errors.hpp"
#include "slm/util/error.hpp"

namespace slm::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using net::awaitable;
using net::use_awaitable;

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// One request's response, filled by the provider from any thread and written by the connection.
class Exchange : public ResponseSink {
 public:
  enum class Kind { json, event, end, error };
  struct Item {
    Kind kind;
    std::string text;
    int status = 200;
  };

  Exchange(net::any_io_executor executor, std::shared_ptr<net::steady_timer> signal)
      : executor_(std::move(executor)), signal_(std::move(signal)) {}

  void finish_json(const nlohmann::json& body) override { end_with({Kind::json, dump(body), 200}); }
  void send_event(const std::string& data) override {
    {
      std::lock_guard lock(mutex_);
      if (ended_) return;
      streaming_ = true;
      items_.push_back({Kind::event, data, 200});
    }
    wake();
  }
  void end_stream() override { end_with({Kind::end, "", 200}); }
  void fail(const ApiError& error) override { end_with({Kind::error, dump(error.to_json()), error.status}); }
  bool cancelled() const override { return gone_.load(); }
  void on_cancel(std::function<void()> callback) override {
    {
      std::lock_guard lock(mutex_);
      if (!gone_.load()) {
        callbacks_.push_back(std::move(callback));
        return;
      }
    }
    callback();
  }

  // The connection's side.
  bool has_items() {
    std::lock_guard lock(mutex_);
    return !items_.empty();
  }
  std::deque<Item> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(items_, {});
  }
  // The client went away (or a write failed): cancel callbacks run once.
  void client_gone() {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard lock(mutex_);
      if (gone_.exchange(true)) return;
      callbacks.swap(callbacks_);
    }
    for (auto& cb : callbacks) {
      try {
        cb();
      } catch (...) {
      }
    }
  }
  // After the response was written: later cancel callbacks are never needed.
  void complete() {
    std::lock_guard lock(mutex_);
    ended_ = true;
    callbacks_.clear();
  }

 private:
  void end_with(Item item) {
    {
      std::lock_guard lock(mutex_);
      if (ended_) return;
      ended_ = true;
      items_.push_back(std::move(item));
    }
    wake();
  }
  void wake() {
    net::post(executor_, [signal = signal_] { signal->cancel(); });
  }

  net::any_io_executor executor_;
  std::shared_ptr<net::steady_timer> signal_;
  std::mutex mutex_;
  std::deque<Item> items_;
  std::vector<std::function<void()>> callbacks_;
  bool ended_ = false;
  bool streaming_ = false;
  std::atomic<bool> gone_{false};
};

// Reads from the socket while a response is being produced: end of stream or an error means the
// client went away; bytes that arrive (a pipelined request) are kept for the next read.
struct DisconnectWatch {
  bool running = false;
  std::array<char, 4096> buf{};
  std::string extra;
  bool closed = false;
};

bool is_http_parse_error(const beast::error_code& ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_target).category();
}

http::response<http::string_body> text_response(http::status status, unsigned version, bool keep_alive,
                                                std::string body, const char* content_type) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "slm");
  res.set(http::field::content_type, content_type);
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

}  // namespace

std::string route_label(const std::string& path) {
  static const char* known[] = {"/health", "/v1/models", "/metrics", "/v1/chat/completions", "/v1/completions",
                                "/v1/embeddings", "/tokenize", "/detokenize"};
  for (const char* k : known) {
    if (path == k) return k;
  }
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{model}";
  return "other";
}

struct HttpServer::Impl {
  std::shared_ptr<Provider> provider;
  HttpOptions options;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  HttpMetrics metrics;
  std::atomic<uint64_t> next_id{1};
  std::unique_ptr<net::signal_set> signals;

  Impl(std::shared_ptr<Provider> p, HttpOptions o) : provider(std::move(p)), options(std::move(o)) {}

  awaitable<void> accept_loop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(net::redirect_error(use_awaitable, ec));
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;  // EMFILE and the like: keep serving the connections we have
      }
      // Streamed chunks are small writes: without this each one after the first waits for the
      // client's delayed acknowledgement (about 40 ms on Linux).
      socket.set_option(tcp::no_delay(true), ec);
      net::co_spawn(io, session(std::move(socket)), net::detached);
    }
  }

  template <class Message>
  awaitable<bool> write_message(beast::tcp_stream& stream, Message& msg) {
    beast::error_code ec;
    stream.expires_after(options.write_timeout);
    co_await http::async_write(stream, msg, net::redirect_error(use_awaitable, ec));
    stream.expires_never();
    co_return !ec;
  }

  // Before closing a connection whose request was refused unread: stop sending, then read and drop
  // what the client still sends for a moment, so that closing does not reset the connection before
  // the client has read the answer.
  awaitable<void> drain(beast::tcp_stream& stream) {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, 16384> sink{};
    size_t total = 0;
    stream.expires_after(std::chrono::seconds(2));
    while (!ec && total < (size_t(64) << 20)) {
      total += co_await stream.async_read_some(net::buffer(sink), net::redirect_error(use_awaitable, ec));
    }
  }

  awaitable<void> session(tcp::socket socket) {
    metrics.connection_opened();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    try {
      for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(uint32_t(options.max_header_bytes));
        parser.body_limit(options.max_body_bytes);
        beast::error_code ec;
        stream.expires_after(options.header_timeout);
        co_await http::async_read_header(stream, buffer, parser, net::redirect_error(use_awaitable, ec));
        if (ec == http::error::body_limit) {
          co_await send_error(stream, 11,
                              make_error(413, "invalid_request_error",
                                         fmt::format("request body exceeds the limit of {} bytes", options.max_body_bytes)),
                              "other");
          co_await drain(stream);
          break;
        }
        if (ec) {
          if (ec == http::error::header_limit) {
            co_await send_error(stream, 11, make_error(431, "invalid_request_error", "request headers too large"), "other");
          } else if (is_http_parse_error(ec) && ec != http::error::end_of_stream && ec != http::error::partial_message) {
            co_await send_error(stream, 11, make_error(400, "invalid_request_error", "malformed HTTP request"), "other");
          }
          break;
        }
        const auto& header = parser.get();
        const std::string path(header.target().substr(0, header.target().find('?')));
        if (auto length = parser.content_length(); length && *length > options.max_body_bytes) {
          co_await send_error(stream, header.version(),
                              make_error(413, "invalid_request_error",
                                         fmt::format("request body of {} bytes exceeds the limit of {} bytes", *length,
                                                     options.max_body_bytes)),
                              route_label(path));
          co_await drain(stream);
          break;
        }
        if (beast::iequals(header[http::field::expect], "100-continue")) {
          http::response<http::empty_body> cont{http::status::continue_, header.version()};
          if (!co_await write_message(stream, cont)) break;
        }
        stream.expires_after(options.body_timeout);
        co_await http::async_read(stream, buffer, parser, net::redirect_error(use_awaitable, ec));
        stream.expires_never();
        if (ec == http::error::body_limit) {
          co_await send_error(stream, header.version(),
                              make_error(413, "invalid_request_error",
                                         fmt::format("request body exceeds the limit of {} bytes", options.max_body_bytes)),
                              route_label(path));
          co_await drain(stream);
          break;
        }
        if (ec) {
          if (is_http_parse_error(ec) && ec != http::error::partial_message) {
            co_await send_error(stream, 11, make_error(400, "invalid_request_error", "malformed HTTP request"), "other");
          }
          break;
        }
        http::request<http::string_body> req = parser.release();
        if (!co_await handle(stream, buffer, req)) break;
      }
    } catch (...) {
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
    metrics.connection_closed();
  }

  awaitable<bool> send_error(beast::tcp_stream& stream, unsigned version, const ApiError& error, const std::string& route,
                             bool keep_alive = false) {
    auto res = text_response(http::status(error.status), version, keep_alive, dump(error.to_json()), "application/json");
    if (error.status == 401) res.set(http::field::www_authenticate, "Bearer");
    metrics.record(route, error.status);
    const bool ok = co_await write_message(stream, res);
    co_return ok && keep_alive;
  }

  bool authorized(const http::request<http::string_body>& req) const {
    if (options.api_key.empty()) return true;
    const std::string_view auth(req[http::field::authorization].data(), req[http::field::authorization].size());
    const std::string expected = "Bearer " + options.api_key;
    if (auth.size() != expected.size()) return false;
    unsigned char diff = 0;  // the same time whatever the first differing byte
    for (size_t i = 0; i < auth.size(); ++i) diff |= uint8_t(auth[i] ^ expected[i]);
    return diff == 0;
  }

  // Answers one request; false when the connection must close.
  awaitable<bool> handle(beast::tcp_stream& stream, beast::flat_buffer& buffer, http::request<http::string_body>& req) {
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const std::string route = route_label(path);
    const bool keep = req.keep_alive();
    const unsigned version = req.version();
    const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
    const bool post = req.method() == http::verb::post;

    if (!(path == "/health" && get) && !authorized(req)) {
      co_return co_await send_error(
          stream, version,
          make_error(401, "invalid_request_error",
                     req[http::field::authorization].empty()
                         ? "You didn't provide an API key. Provide it in the Authorization header as 'Bearer KEY'."
                         : "Incorrect API key provided.",
                     "", "invalid_api_key"),
          route, keep);
    }
    if (get && (path == "/health" || path == "/v1/models" || path == "/metrics" || path.rfind("/v1/models/", 0) == 0)) {
      http::status status = http::status::ok;
      std::string body;
      const char* type = "application/json";
      std::optional<ApiError> failure;
      try {
        if (path == "/health") {
          const bool ok = provider->healthy();
          status = ok ? http::status::ok : http::status::service_unavailable;
          body = ok ? R"({"status":"ok"})" : R"({"status":"loading"})";
        } else if (path == "/v1/models") {
          body = dump(provider->models());
        } else if (path == "/metrics") {
          type = "text/plain; version=0.0.4; charset=utf-8";
          body = metrics.text() + provider->metrics_text();
        } else {
          const std::string id = path.substr(std::string("/v1/models/").size());
          const nlohmann::json models = provider->models();
          status = http::status::not_found;
          body = dump(make_error(404, "invalid_request_error", fmt::format("The model '{}' does not exist", id), "model",
                                 "model_not_found")
                          .to_json());
          if (models.contains("data")) {
            for (const auto& m : models["data"]) {
              if (m.value("id", "") == id) {
                status = http::status::ok;
                body = dump(m);
              }
            }
          }
        }
      } catch (...) {
        failure = error_from_current_exception();
      }
      if (failure) co_return co_await send_error(stream, version, *failure, route, keep);
      auto res = text_response(status, version, keep, std::move(body), type);
      metrics.record(route, int(status));
      co_return co_await write_message(stream, res) && keep;
    }

    const bool known_post = path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/embeddings";
    if (known_post && !post) {
      co_return co_await send_error(
          stream, version,
          make_error(405, "invalid_request_error", fmt::format("{} {} is not supported; use POST", std::string(req.method_string()), path)),
          route, keep);
    }
    if (get && !known_post) {
      // Other GET routes a provider serves (GET /v1/router/stats): an empty request object.
      RequestInfo get_info;
      get_info.request_id = fmt::format("req-{:x}", next_id.fetch_add(1));
      auto get_signal = std::make_shared<net::steady_timer>(io);
      auto get_exchange = std::make_shared<Exchange>(io.get_executor(), get_signal);
      bool served = false;
      try {
        served = provider->handle_other("GET", path, nlohmann::json::object(), get_info, get_exchange);
      } catch (...) {
        get_exchange->fail(error_from_current_exception());
        served = true;
      }
      if (served) co_return co_await pump(stream, buffer, get_exchange, get_signal, version, keep, route, get_info.request_id);
      get_exchange->complete();
    }
    if (!post) {
      co_return co_await send_error(
          stream, version,
          make_error(404, "invalid_request_error", fmt::format("Unknown request URL: {} {}", std::string(req.method_string()), path), "",
                     "unknown_url"),
          route, keep);
    }

    nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
    if (body.is_discarded()) {
      co_return co_await send_error(
          stream, version,
          make_error(400, "invalid_request_error",
                     "We could not parse the JSON body of your request. The body must be valid JSON."),
          route, keep);
    }
    RequestInfo info;
    info.request_id = fmt::format("req-{:x}", next_id.fetch_add(1));
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (auto& c : name) c = char(std::tolower(uint8_t(c)));
      if (name == "authorization") continue;
      info.headers[name] = std::string(f.value());
    }
    {
      const std::string auth(req[http::field::authorization]);
      if (auth.size() > 7 && beast::iequals(auth.substr(0, 7), "Bearer ")) info.api_key = auth.substr(7);
    }
    info.body = std::move(req.body());

    auto signal = std::make_shared<net::steady_timer>(io);
    auto exchange = std::make_shared<Exchange>(io.get_executor(), signal);
    bool handled = true;
    try {
      if (path == "/v1/chat/completions") provider->chat_completions(body, info, exchange);
      else if (path == "/v1/completions") provider->completions(body, info, exchange);
      else if (path == "/v1/embeddings") provider->embeddings(body, info, exchange);
      else handled = provider->handle_other("POST", path, body, info, exchange);
    } catch (...) {
      exchange->fail(error_from_current_exception());
    }
    if (!handled) {
      exchange->complete();
      co_return co_await send_error(
          stream, version,
          make_error(404, "invalid_request_error", fmt::format("Unknown request URL: POST {}", path), "", "unknown_url"), route,
          keep);
    }
    co_return co_await pump(stream, buffer, exchange, signal, version, keep, route, info.request_id);
  }

  // Writes what the provider produces until the response ends or the client goes away.
  awaitable<bool> pump(beast::tcp_stream& stream, beast::flat_buffer& buffer, std::shared_ptr<Exchange> exchange_ptr,
                       std::shared_ptr<net::steady_timer> signal_ptr, unsigned version, bool keep, const std::string& route,
                       const std::string& request_id) {
    Exchange& exchange = *exchange_ptr;
    net::steady_timer& signal = *signal_ptr;
    auto watch = std::make_shared<DisconnectWatch>();
    bool header_sent = false, done = false, ok = true;
    auto write_chunk = [&](const std::string& data) -> awaitable<bool> {
      beast::error_code ec;
      stream.expires_after(options.write_timeout);
      co_await net::async_write(stream, http::make_chunk(net::const_buffer(data.data(), data.size())),
                                net::redirect_error(use_awaitable, ec));
      stream.expires_never();
      co_return !ec;
    };
    auto send_header = [&]() -> awaitable<bool> {
      http::response<http::empty_body> res{http::status::ok, version};
      res.set(http::field::server, "slm");
      res.set(http::field::content_type, "text/event-stream");
      res.set(http::field::cache_control, "no-cache");
      res.set("x-request-id", request_id);
      res.keep_alive(keep);
      res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      beast::error_code ec;
      stream.expires_after(options.write_timeout);
      co_await http::async_write_header(stream, sr, net::redirect_error(use_awaitable, ec));
      stream.expires_never();
      header_sent = true;
      metrics.record(route, 200);
      co_return !ec;
    };
    auto finish_stream = [&]() -> awaitable<bool> {
      beast::error_code ec;
      stream.expires_after(options.write_timeout);
      co_await net::async_write(stream, http::make_chunk_last(), net::redirect_error(use_awaitable, ec));
      stream.expires_never();
      co_return !ec;
    };

    while (!done && ok) {
      for (auto& item : exchange.take()) {
        if (!ok || done) break;
        switch (item.kind) {
          case Exchange::Kind::json: {
            auto res = text_response(http::status::ok, version, keep, std::move(item.text), "application/json");
            res.set("x-request-id", request_id);
            metrics.record(route, 200);
            ok = co_await write_message(stream, res);
            done = true;
            break;
          }
          case Exchange::Kind::error:
            if (!header_sent) {
              auto res = text_response(http::status(item.status), version, keep, std::move(item.text), "application/json");
              res.set("x-request-id", request_id);
              metrics.record(route, item.status);
              ok = co_await write_message(stream, res);
            } else {
              ok = co_await write_chunk("data: " + item.text + "\n\n") && co_await finish_stream();
            }
            done = true;
            break;
          case Exchange::Kind::event:
            if (!header_sent) ok = co_await send_header();
            if (ok) ok = co_await write_chunk("data: " + item.text + "\n\n");
            break;
          case Exchange::Kind::end:
            if (!header_sent) ok = co_await send_header();
            if (ok) ok = co_await write_chunk("data: [DONE]\n\n") && co_await finish_stream();
            done = true;
            break;
        }
      }
      if (!ok) {
        exchange.client_gone();
        break;
      }
      if (done || exchange.cancelled()) break;
      // Items queued while the writes above were in flight: their wake-up found no waiter.
      if (exchange.has_items()) continue;
      if (!watch->running && !watch->closed && watch->extra.size() < 65536) {
        watch->running = true;
        stream.socket().async_read_some(
            net::buffer(watch->buf), [watch, exchange = exchange_ptr, signal = signal_ptr](beast::error_code ec, size_t n) {
              watch->running = false;
              if (!ec) {
                watch->extra.append(watch->buf.data(), n);
              } else if (ec != net::error::operation_aborted) {
                watch->closed = true;
                exchange->client_gone();
              }
              signal->cancel();
            });
      }
      beast::error_code ec;
      signal.expires_at(net::steady_timer::time_point::max());
      co_await signal.async_wait(net::redirect_error(use_awaitable, ec));
    }
    if (watch->running) {
      beast::error_code ignored;
      stream.socket().cancel(ignored);
      while (watch->running) {
        beast::error_code ec;
        signal.expires_at(net::steady_timer::time_point::max());
        co_await signal.async_wait(net::redirect_error(use_awaitable, ec));
      }
    }
    exchange.complete();
    if (!watch->extra.empty()) {
      auto space = buffer.prepare(watch->extra.size());
      net::buffer_copy(space, net::buffer(watch->extra));
      buffer.commit(watch->extra.size());
    }
    co_return ok && done && keep && !watch->closed;
  }
};

}  // namespace slm::server

namespace slm::server {

HttpServer::HttpServer(std::shared_ptr<Provider> provider, HttpOptions options)
    : impl_(std::make_unique<Impl>(std::move(provider), std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

HttpMetrics& HttpServer::metrics() { return impl_->metrics; }

uint16_t HttpServer::listen() {
  Impl& s = *impl_;
  boost::system::error_code ec;
  const auto address = net::ip::make_address(s.options.host, ec);
  if (ec) fail(ErrorKind::invalid_argument, "--host: expected an IP address, found '{}'", s.options.host);
  const tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail(ErrorKind::io, "cannot listen on {}:{}: {}", s.options.host, s.options.port, ec.message());
  net::co_spawn(s.io, s.accept_loop(), net::detached);
  if (s.options.handle_signals) {
    s.signals = std::make_unique<net::signal_set>(s.io, SIGINT, SIGTERM);
    s.signals->async_wait([this](const boost::system::error_code& e, int) {
      if (!e) stop();
    });
  }
  return s.acceptor.local_endpoint().port();
}

void HttpServer::run() { impl_->io.run(); }

void HttpServer::stop() {
  net::post(impl_->io, [impl = impl_.get()] {
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
    if (impl->signals) impl->signals->cancel(ignored);
  });
  impl_->io.stop();
}

}  // namespace slm::server
