// Upstream HTTP client: one coroutine per call on the router's io_context.
#include "slm/router/upstream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <limits>
#include <vector>

#include "slm/util/error.hpp"

namespace slm::router {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

const char* endpoint_path(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::chat: return "/chat/completions";
    case Endpoint::completions: return "/completions";
    case Endpoint::embeddings: return "/embeddings";
  }
  return "/chat/completions";
}

Url Url::parse(const std::string& text) {
  Url u;
  std::string rest;
  if (text.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = text.substr(8);
  } else if (text.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else {
    fail(ErrorKind::invalid_argument, "expected a URL starting with http:// or https://, found '{}'", text);
  }
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
    u.port = u.tls ? "443" : "80";
  }
  if (u.host.empty()) fail(ErrorKind::invalid_argument, "expected a host in URL '{}', found none", text);
  if (u.port.empty() || u.port.find_first_not_of("0123456789") != std::string::npos) {
    fail(ErrorKind::invalid_argument, "expected a numeric port in URL '{}', found '{}'", text, u.port);
  }
  return u;
}

namespace {

struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*tls); }
  void close() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }
};

// Splits server-sent events; hands each event's data to `on_data`.
class SseSplitter {
 public:
  template <typename F>
  void feed(const char* data, size_t n, F&& on_data) {
    pending_.append(data, n);
    size_t start = 0;
    for (;;) {
      const size_t nl = pending_.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(pending_.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) {
        if (has_data_) on_data(data_);
        data_.clear();
        has_data_ = false;
        continue;
      }
      if (line.rfind("data:", 0) == 0) {
        std::string_view v = line.substr(5);
        if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
        if (has_data_) data_ += '\n';
        data_.append(v);
        has_data_ = true;
      }
      // Other fields (event:, id:, retry:, comments) carry nothing the router uses.
    }
    pending_.erase(0, start);
  }

 private:
  std::string pending_;
  std::string data_;
  bool has_data_ = false;
};

struct StopReading {};  // the call ended early (done event, malformed data, cancel)

}  // namespace

struct UpstreamDeployment::Impl {
  asio::io_context& io;
  Url url;
  std::string bearer;
  std::string model;
  std::unique_ptr<asio::ssl::context> ssl_context;
  tcp::resolver resolver;
  tcp::resolver::results_type endpoints;
  std::vector<std::unique_ptr<Connection>> idle;
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> requests{0};

  Impl(asio::io_context& io_context, Url u) : io(io_context), url(std::move(u)), resolver(io_context) {}
};

namespace {

class UpstreamCall : public CallHandle, public std::enable_shared_from_this<UpstreamCall> {
 public:
  explicit UpstreamCall(asio::io_context& io) : io_(io) {}
  void cancel() override {
    asio::post(io_, [self = shared_from_this()] {
      self->cancelled = true;
      if (self->active) self->active->close();
    });
  }
  asio::io_context& io_;
  Connection* active = nullptr;
  bool cancelled = false;
};

std::string error_message_of(const std::string& body) {
  try {
    const auto j = nlohmann::json::parse(body);
    if (j.is_object() && j.contains("error")) {
      const auto& e = j["error"];
      if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
      if (e.is_string()) return e.get<std::string>();
    }
  } catch (const nlohmann::json::exception&) {
  }
  return body.substr(0, 200);
}

// One request/response exchange on an open connection. Returns whether the connection may be reused.
template <typename Stream>
asio::awaitable<bool> exchange(Stream& stream, Connection& conn, const http::request<http::string_body>& req,
                               const CallOptions& options, Clock::time_point start, UpstreamCall& call, EventQueue& queue,
                               bool& response_started) {
  auto& low = conn.lowest();
  const auto first_byte_deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.first_byte_timeout_s));
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout_s));
  low.expires_at(std::min(first_byte_deadline, deadline));
  co_await http::async_write(stream, req, asio::use_awaitable);
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  co_await http::async_read_header(stream, conn.buffer, parser, asio::use_awaitable);
  response_started = true;
  low.expires_at(deadline);
  const int status = int(parser.get().result_int());
  const auto content_type = parser.get()[http::field::content_type];
  const bool sse = status == 200 && content_type.find("text/event-stream") != beast::string_view::npos;
  std::string body;
  SseSplitter splitter;
  bool finished = false;
  char buf[16384];
  auto on_data = [&](const std::string& data) {
    if (finished) return;
    if (data == "[DONE]") {
      finished = true;
      queue.push(Event::of(Event::Kind::done));
      return;
    }
    Event e;
    e.kind = Event::Kind::chunk;
    try {
      e.body = nlohmann::json::parse(data);
    } catch (const nlohmann::json::exception&) {
      finished = true;
      queue.push(Event::error(502, "upstream sent a malformed JSON event in its stream", true));
      return;
    }
    if (e.body.is_object() && e.body.contains("error")) {
      finished = true;
      queue.push(Event::error(502, "upstream stream error: " + error_message_of(data), true));
      return;
    }
    queue.push(std::move(e));
  };
  while (!parser.is_done()) {
    parser.get().body().data = buf;
    parser.get().body().size = sizeof(buf);
    beast::error_code ec;
    co_await http::async_read_some(stream, conn.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) throw boost::system::system_error(ec);
    const size_t n = sizeof(buf) - parser.get().body().size;
    if (call.cancelled) throw StopReading{};
    if (sse) {
      // After [DONE] the rest of the message (the chunked terminator) is read so the connection can be reused.
      splitter.feed(buf, n, on_data);
    } else {
      if (body.size() + n > (64u << 20)) {
        queue.push(Event::error(502, "upstream answer larger than 64 MiB", false));
        co_return false;
      }
      body.append(buf, n);
    }
  }
  if (sse) {
    if (!finished) queue.push(Event::error(502, "upstream stream ended without [DONE]", true));
    co_return parser.keep_alive();
  }
  if (status != 200) {
    const bool retry = retryable_status(status);
    std::string type = status == 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error";
    queue.push(Event::error(status, "upstream answered " + std::to_string(status) + ": " + error_message_of(body), retry, type));
  } else {
    Event e;
    e.kind = Event::Kind::json;
    try {
      e.body = nlohmann::json::parse(body);
      if (!e.body.is_object()) throw std::runtime_error("not an object");
      queue.push(std::move(e));
    } catch (const std::exception&) {
      queue.push(Event::error(502, "upstream answered malformed JSON", true));
    }
  }
  co_return parser.keep_alive();
}

}  // namespace

std::shared_ptr<UpstreamDeployment> UpstreamDeployment::create(asio::io_context& io, const Url& url, std::string bearer,
                                                               std::string model) {
  std::shared_ptr<UpstreamDeployment> d(new UpstreamDeployment());
  d->impl_ = std::make_unique<Impl>(io, url);
  d->impl_->bearer = std::move(bearer);
  d->impl_->model = std::move(model);
  if (url.tls) {
    d->impl_->ssl_context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    d->impl_->ssl_context->set_default_verify_paths();
    d->impl_->ssl_context->set_verify_mode(asio::ssl::verify_peer);
  }
  return d;
}

UpstreamDeployment::~UpstreamDeployment() = default;

UpstreamStats UpstreamDeployment::stats() const { return {impl_->connections_opened.load(), impl_->requests.load()}; }

namespace {

asio::awaitable<std::unique_ptr<Connection>> open_connection(UpstreamDeployment::Impl& impl, const CallOptions& options) {
  if (impl.endpoints.empty()) {
    impl.endpoints = co_await impl.resolver.async_resolve(impl.url.host, impl.url.port, asio::use_awaitable);
  }
  auto conn = std::make_unique<Connection>();
  const auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.connect_timeout_s));
  if (impl.url.tls) {
    conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(impl.io, *impl.ssl_context);
    if (!SSL_set_tlsext_host_name(conn->tls->native_handle(), impl.url.host.c_str())) {
      throw boost::system::system_error(beast::error_code(int(::ERR_get_error()), asio::error::get_ssl_category()));
    }
    conn->tls->set_verify_callback(asio::ssl::host_name_verification(impl.url.host));
  } else {
    conn->plain = std::make_unique<beast::tcp_stream>(impl.io);
  }
  conn->lowest().expires_after(timeout);
  try {
    co_await conn->lowest().async_connect(impl.endpoints, asio::use_awaitable);
  } catch (...) {
    impl.endpoints = {};  // resolve again next time
    throw;
  }
  conn->lowest().socket().set_option(tcp::no_delay(true));
  if (conn->tls) co_await conn->tls->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
  ++impl.connections_opened;
  co_return conn;
}

asio::awaitable<void> run_call(std::shared_ptr<UpstreamDeployment> owner, UpstreamDeployment::Impl& impl,
                               std::shared_ptr<UpstreamCall> call, std::shared_ptr<http::request<http::string_body>> req,
                               CallOptions options, std::shared_ptr<EventQueue> queue) {
  const auto start = Clock::now();
  ++impl.requests;
  // A kept-alive connection may have been closed by the server meanwhile: one more try on a new one.
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<Connection> conn;
    bool reused = false;
    if (!impl.idle.empty()) {
      conn = std::move(impl.idle.back());
      impl.idle.pop_back();
      reused = true;
    }
    bool response_started = false;
    try {
      if (!conn) conn = co_await open_connection(impl, options);
      if (call->cancelled) co_return;
      call->active = conn.get();
      bool keep = false;
      if (conn->tls) keep = co_await exchange(*conn->tls, *conn, *req, options, start, *call, *queue, response_started);
      else keep = co_await exchange(*conn->plain, *conn, *req, options, start, *call, *queue, response_started);
      call->active = nullptr;
      if (keep && !call->cancelled && impl.idle.size() < 256) {
        conn->lowest().expires_never();
        impl.idle.push_back(std::move(conn));
      }
      co_return;
    } catch (const StopReading&) {
      call->active = nullptr;
      co_return;
    } catch (const boost::system::system_error& e) {
      call->active = nullptr;
      if (call->cancelled) co_return;
      if (reused && !response_started && e.code() != beast::error::timeout) continue;
      const bool timeout = e.code() == beast::error::timeout;
      queue->push(Event::error(0, std::string(timeout ? "upstream timed out: " : "upstream connection failed: ") + e.code().message(), true));
      co_return;
    }
  }
}

}  // namespace

std::shared_ptr<CallHandle> UpstreamDeployment::start(Endpoint endpoint, const nlohmann::json& request, const CallOptions& options,
                                                      std::shared_ptr<EventQueue> queue) {
  auto call = std::make_shared<UpstreamCall>(impl_->io);
  auto req = std::make_shared<http::request<http::string_body>>(http::verb::post, impl_->url.base_path + endpoint_path(endpoint), 11);
  nlohmann::json body = request;
  if (!impl_->model.empty()) body["model"] = impl_->model;
  if (options.stream) {
    body["stream"] = true;
    body["stream_options"]["include_usage"] = true;
  } else if (body.contains("stream")) {
    body["stream"] = false;
  }
  req->set(http::field::host, impl_->url.host);
  req->set(http::field::user_agent, "slm-router");
  req->set(http::field::content_type, "application/json");
  if (options.stream) req->set(http::field::accept, "text/event-stream");
  if (!impl_->bearer.empty()) req->set(http::field::authorization, "Bearer " + impl_->bearer);
  req->body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  req->prepare_payload();
  asio::co_spawn(impl_->io, run_call(shared_from_this(), *impl_, call, req, options, queue), asio::detached);
  return call;
}

}  // namespace slm::router
