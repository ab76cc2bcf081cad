// Load on the tier router over loopback: a fast fake OpenAI upstream (in this program), a closed loop
// of concurrent clients, requests/s and latency percentiles, once straight to the upstream and once
// through the router (policy, limits, balancing, accounting in SQLite). The difference is the
// latency the router adds.
//
// Default mode: the router is called in process (no HTTP front) and the direct run uses the router's
// own upstream client. --http: the router sits behind slm's HTTP server on loopback, and one HTTP
// client (keep-alive connections) alternates phases against the fake upstream directly and against
// the front, so that both sides see the same machine load; --concurrency takes a comma-separated
// list and each level is measured in turn.
//
//   router_load [--requests N] [--concurrency C[,C...]] [--stream] [--database PATH]
//               [--http [--phases K]] [--shared]
//
// --shared: limits and budgets counted in the SQLite database (accounting.shared), as replicas
// would share them.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "slm/router/router.hpp"
#include "slm/router/upstream.hpp"
#include "slm/server/http_server.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kAnswer =
    R"({"id":"cmpl-1","object":"chat.completion","created":1,"model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}})";

std::string stream_answer() {
  std::string body;
  for (const char* piece : {"Paris", " is", " the", " capital", "."}) {
    body += std::string(R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fake","choices":[{"index":0,"delta":{"content":")") + piece +
            R"("},"finish_reason":null}]})" + "\n\n";
  }
  body += R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fake","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}})";
  body += "\n\ndata: [DONE]\n\n";
  return body;
}

// A keep-alive HTTP/1.1 server that answers every POST at once with a fixed body.
asio::awaitable<void> serve_connection(tcp::socket socket) {
  const std::string json_response =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(kAnswer.size()) + "\r\n\r\n" + kAnswer;
  const std::string sse = stream_answer();
  const std::string sse_response =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " + std::to_string(sse.size()) + "\r\n\r\n" + sse;
  asio::streambuf buf;
  try {
    for (;;) {
      const size_t header_end = co_await asio::async_read_until(socket, buf, "\r\n\r\n", asio::use_awaitable);
      std::string headers(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + std::ptrdiff_t(header_end));
      buf.consume(header_end);
      size_t length = 0;
      for (const char* name : {"Content-Length: ", "content-length: "}) {
        const size_t at = headers.find(name);
        if (at != std::string::npos) length = std::stoul(headers.substr(at + std::strlen(name)));
      }
      if (buf.size() < length) co_await asio::async_read(socket, buf, asio::transfer_exactly(length - buf.size()), asio::use_awaitable);
      std::string body(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + std::ptrdiff_t(length));
      buf.consume(length);
      const bool stream = body.find("\"stream\":true") != std::string::npos;
      co_await asio::async_write(socket, asio::buffer(stream ? sse_response : json_response), asio::use_awaitable);
    }
  } catch (const std::exception&) {
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
  for (;;) {
    tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), serve_connection(std::move(s)), asio::detached);
  }
}

struct Result {
  double seconds = 0;
  std::vector<double> latencies_ms;
  int errors = 0;
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5))];
}

const nlohmann::json& request_body() {
  static const nlohmann::json r{{"model", "auto"}, {"max_tokens", 16},
                                {"messages", {{{"role", "user"}, {"content", "What is the capital of France?"}}}}};
  return r;
}

// Straight to the upstream with the router's client.
Result run_direct(const std::string& url, int requests, int concurrency, bool stream) {
  asio::io_context io;
  auto deployment = slm::router::UpstreamDeployment::create(io, slm::router::Url::parse(url), "", "fake");
  Result result;
  result.latencies_ms.reserve(size_t(requests));
  int issued = 0;
  slm::router::CallOptions options;
  options.stream = stream;
  auto worker = [&]() -> asio::awaitable<void> {
    while (issued < requests) {
      ++issued;
      const auto t0 = Clock::now();
      auto queue = std::make_shared<slm::router::EventQueue>(io.get_executor());
      auto call = deployment->start(slm::router::Endpoint::chat, request_body(), options, queue);
      for (;;) {
        auto e = co_await queue->next(Clock::now() + std::chrono::seconds(10));
        if (e.kind == slm::router::Event::Kind::error) {
          ++result.errors;
          break;
        }
        if (e.kind == slm::router::Event::Kind::json || e.kind == slm::router::Event::Kind::done) break;
      }
      result.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  };
  const auto start = Clock::now();
  for (int c = 0; c < concurrency; ++c) asio::co_spawn(io, worker(), asio::detached);
  io.run();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

// A sink that starts the client's next request when the answer ends.
class LoopSink : public slm::server::ResponseSink {
 public:
  LoopSink(std::function<void(bool ok)> done) : done_(std::move(done)) {}
  void finish_json(const nlohmann::json&) override { end(true); }
  void send_event(const std::string&) override {}
  void end_stream() override { end(true); }
  void fail(const slm::server::ApiError&) override { end(false); }
  bool cancelled() const override { return false; }
  void on_cancel(std::function<void()>) override {}

 private:
  void end(bool ok) {
    if (!ended_.exchange(true)) done_(ok);
  }
  std::atomic<bool> ended_{false};
  std::function<void(bool)> done_;
};

Result run_router(slm::router::Router& router, int requests, int concurrency, bool stream) {
  Result result;
  result.latencies_ms.reserve(size_t(requests));
  std::mutex mutex;
  std::atomic<int> issued{0}, finished{0};
  std::promise<void> all_done;
  nlohmann::json body = request_body();
  if (stream) body["stream"] = true;
  std::function<void()> issue = [&]() {
    const int n = issued.fetch_add(1);
    if (n >= requests) return;
    const auto t0 = Clock::now();
    auto sink = std::make_shared<LoopSink>([&, t0](bool ok) {
      {
        std::lock_guard lock(mutex);
        result.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!ok) ++result.errors;
      }
      if (finished.fetch_add(1) + 1 == requests) all_done.set_value();
      else issue();
    });
    slm::server::RequestInfo info;
    static std::atomic<uint64_t> serial{0};
    info.request_id = "bench-" + std::to_string(++serial);
    info.api_key = "sk-bench";
    router.chat_completions(body, info, sink);
  };
  const auto start = Clock::now();
  for (int c = 0; c < concurrency; ++c) issue();
  all_done.get_future().wait();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

void report(const char* name, const Result& r) {
  std::printf("%-34s %8zu req %6d err %9.0f req/s   p50 %7.3f ms   p99 %7.3f ms\n", name, r.latencies_ms.size(), r.errors,
              double(r.latencies_ms.size()) / r.seconds, percentile(r.latencies_ms, 0.5), percentile(r.latencies_ms, 0.99));
}


// --- through the HTTP front -------------------------------------------------------------------

namespace beast = boost::beast;
namespace http = beast::http;

// One keep-alive connection of the load client.
struct Connection {
  explicit Connection(asio::io_context& io) : stream(io) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

struct Side {
  std::string name;
  tcp::endpoint endpoint;
  std::string target;  // request path
  std::vector<std::unique_ptr<Connection>> connections;
  Result result;
};

// One phase: `count` requests over the side's connections, `concurrency` at a time.
void run_phase(asio::io_context& io, Side& side, int count, int concurrency, const std::string& body) {
  int issued = 0;
  auto worker = [&](Connection& c) -> asio::awaitable<void> {
    while (issued < count) {
      ++issued;
      http::request<http::string_body> req{http::verb::post, side.target, 11};
      req.set(http::field::host, "127.0.0.1");
      req.set(http::field::content_type, "application/json");
      req.set(http::field::authorization, "Bearer sk-bench");
      req.keep_alive(true);
      req.body() = body;
      req.prepare_payload();
      const auto t0 = Clock::now();
      http::response<http::string_body> res;
      beast::error_code ec;
      co_await http::async_write(c.stream, req, asio::redirect_error(asio::use_awaitable, ec));
      if (!ec) co_await http::async_read(c.stream, c.buffer, res, asio::redirect_error(asio::use_awaitable, ec));
      side.result.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (ec || res.result() != http::status::ok || res.body().find("Paris") == std::string::npos) ++side.result.errors;
      if (ec) co_return;  // a broken connection stops its worker
    }
  };
  const auto start = Clock::now();
  for (int i = 0; i < concurrency; ++i) asio::co_spawn(io, worker(*side.connections[size_t(i)]), asio::detached);
  io.run();
  io.restart();
  side.result.seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

void connect_all(asio::io_context& io, Side& side, int concurrency) {
  while (int(side.connections.size()) < concurrency) {
    auto c = std::make_unique<Connection>(io);
    c->stream.connect(side.endpoint);
    c->stream.socket().set_option(tcp::no_delay(true));
    side.connections.push_back(std::move(c));
  }
}

double load_average() {
  double l = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

int run_http(const std::string& url, int upstream_port, slm::router::RouterConfig config, int requests,
             const std::vector<int>& levels, int phases, bool stream) {
  const bool shared = config.shared;
  auto router = std::make_shared<slm::router::Router>(std::move(config));
  slm::server::HttpOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  slm::server::HttpServer server(router, options);
  const uint16_t front_port = server.listen();
  std::thread server_thread([&] { server.run(); });
  nlohmann::json body = request_body();
  if (stream) body["stream"] = true;
  const std::string text = body.dump();

  asio::io_context io;
  const auto loopback = asio::ip::make_address("127.0.0.1");
  Side direct{"direct", tcp::endpoint(loopback, uint16_t(upstream_port)), "/v1/chat/completions", {}, {}};
  Side routed{"router", tcp::endpoint(loopback, front_port), "/v1/chat/completions", {}, {}};
  std::printf("router load over HTTP: %d requests per side per level, %d phases per side (alternating), %s; "
              "%s; fake upstream, HTTP front, router and client on one thread each; load average %.2f\n",
              requests, phases, stream ? "streamed" : "non-streamed", shared ? "limits shared in SQLite" : "limits in memory",
              load_average());
  std::printf("%8s %10s %10s %9s %9s %9s %9s %9s %9s %6s\n", "clients", "direct/s", "router/s", "d p50", "d p99", "r p50", "r p99",
              "add p50", "add p99", "errors");
  int64_t total = 0;
  int status = 0;
  for (const int c : levels) {
    connect_all(io, direct, c);
    connect_all(io, routed, c);
    // Warm-up: connections, caches, the router's upstream pool.
    run_phase(io, direct, std::min(requests, 200 * c), c, text);
    run_phase(io, routed, std::min(requests, 200 * c), c, text);
    total += std::min(requests, 200 * c);
    direct.result = {};
    routed.result = {};
    // Phases in the order A B B A A B ... so that neither side always runs first.
    for (int p = 0; p < phases; ++p) {
      const int n = requests / phases + (p < requests % phases ? 1 : 0);
      Side& first = p % 2 == 0 ? direct : routed;
      Side& second = p % 2 == 0 ? routed : direct;
      run_phase(io, first, n, c, text);
      run_phase(io, second, n, c, text);
    }
    total += requests;
    const Result& d = direct.result;
    const Result& r = routed.result;
    const double d50 = percentile(d.latencies_ms, 0.5), d99 = percentile(d.latencies_ms, 0.99);
    const double r50 = percentile(r.latencies_ms, 0.5), r99 = percentile(r.latencies_ms, 0.99);
    std::printf("%8d %10.0f %10.0f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %6d\n", c, double(d.latencies_ms.size()) / d.seconds,
                double(r.latencies_ms.size()) / r.seconds, d50, d99, r50, r99, r50 - d50, r99 - d99, d.errors + r.errors);
    if (d.errors + r.errors > 0) status = 1;
  }
  std::printf("load average after: %.2f\n", load_average());
  server.stop();
  server_thread.join();
  router->store().flush();
  const int64_t rows = router->store().count_requests();
  std::printf("log rows: %lld (expected %lld)\n", (long long)rows, (long long)total);
  if (rows != total) status = 1;
  return status;
}
}  // namespace

int main(int argc, char** argv) {
  int requests = 20000, phases = 10;
  std::vector<int> levels{16};
  bool stream = false, http_front = false, shared = false;
  std::string database = (std::filesystem::temp_directory_path() / ("router_load_" + std::to_string(::getpid()) + ".db")).string();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--requests" && i + 1 < argc) requests = std::stoi(argv[++i]);
    else if (a == "--concurrency" && i + 1 < argc) {
      levels.clear();
      std::string list = argv[++i];
      for (size_t at = 0; at <= list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        levels.push_back(std::stoi(list.substr(at, comma - at)));
        at = comma + 1;
      }
    } else if (a == "--stream") stream = true;
    else if (a == "--http") http_front = true;
    else if (a == "--shared") shared = true;
    else if (a == "--phases" && i + 1 < argc) phases = std::max(1, std::stoi(argv[++i]));
    else if (a == "--database" && i + 1 < argc) database = argv[++i];
    else {
      std::fprintf(stderr, "usage: router_load [--requests N] [--concurrency C[,C...]] [--stream] [--database PATH] [--http [--phases K]] [--shared]\n");
      return 2;
    }
  }
  for (const int c : levels) {
    if (c < 1) {
      std::fprintf(stderr, "router_load: expected concurrency >= 1, found %d\n", c);
      return 2;
    }
  }
  int status = 0;
  try {
    asio::io_context fake_io;
    tcp::acceptor acceptor(fake_io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const int port = acceptor.local_endpoint().port();
    asio::co_spawn(fake_io, accept_loop(acceptor), asio::detached);
    std::thread fake_thread([&] { fake_io.run(); });
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1";

    const std::string yaml = "tiers:\n  - name: small\n    price_per_million: {input: 0.1, output: 0.2}\n    deployments:\n"
                             "      - {url: '" + url + "', model: fake}\n      - {url: '" + url + "', model: fake}\n"
                             "routes:\n  - {model: auto, policy: rules}\npolicies:\n  rules:\n    kind: rules\n    rules:\n"
                             "      - {when: {tools: true}, tier: small}\n      - {when: {task: extract}, tier: small}\n    default: small\n"
                             "limits:\n  keys:\n    default: {requests_per_minute: 100000000, tokens_per_minute: 1000000000}\n";
    slm::router::RouterConfig config = slm::router::parse_config(yaml, "bench.yaml");
    config.database = database;
    config.shared = shared;  // limits and spend counted in the database, as replicas share them
    if (http_front) {
      status = run_http(url, port, std::move(config), requests, levels, phases, stream);
    } else {
      const int concurrency = levels.front();
      std::printf("router load: %d requests, %d concurrent clients, %s, fake upstream on one thread, router on one thread\n", requests,
                  concurrency, stream ? "streamed" : "non-streamed");
      run_direct(url, std::min(requests, 2000), concurrency, stream);  // warm-up
      const Result direct = run_direct(url, requests, concurrency, stream);
      report("client -> upstream (no router)", direct);
      slm::router::Router router(std::move(config));
      run_router(router, std::min(requests, 2000), concurrency, stream);  // warm-up
      const Result routed = run_router(router, requests, concurrency, stream);
      report("client -> router -> upstream", routed);
      std::printf("router-added latency: p50 %.3f ms, p99 %.3f ms (difference of the percentiles)\n",
                  percentile(routed.latencies_ms, 0.5) - percentile(direct.latencies_ms, 0.5),
                  percentile(routed.latencies_ms, 0.99) - percentile(direct.latencies_ms, 0.99));
      router.store().flush();
      std::printf("log rows: %lld (expected %d)\n", (long long)router.store().count_requests(), requests + std::min(requests, 2000));
    }
    fake_io.stop();
    fake_thread.join();
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(database + suffix, ec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "router_load: %s\n", e.what());
    return 1;
  }
  return status;
}
