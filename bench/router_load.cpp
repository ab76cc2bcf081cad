// Load on the tier router over loopback: a fast fake OpenAI upstream (in this program), a closed loop
// of concurrent clients, requests/s and latency percentiles, once straight to the upstream with the
// router's own HTTP client and once through the router (policy, limits, balancing, accounting in
// SQLite). The difference is the latency the router adds.
//
//   router_load [--requests N] [--concurrency C] [--stream] [--database PATH]
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

#include "slm/router/router.hpp"
#include "slm/router/upstream.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  int requests = 20000, concurrency = 16;
  bool stream = false;
  std::string database = (std::filesystem::temp_directory_path() / ("router_load_" + std::to_string(::getpid()) + ".db")).string();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--requests" && i + 1 < argc) requests = std::stoi(argv[++i]);
    else if (a == "--concurrency" && i + 1 < argc) concurrency = std::stoi(argv[++i]);
    else if (a == "--stream") stream = true;
    else if (a == "--database" && i + 1 < argc) database = argv[++i];
    else {
      std::fprintf(stderr, "usage: router_load [--requests N] [--concurrency C] [--stream] [--database PATH]\n");
      return 2;
    }
  }
  try {
    asio::io_context fake_io;
    tcp::acceptor acceptor(fake_io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const int port = acceptor.local_endpoint().port();
    asio::co_spawn(fake_io, accept_loop(acceptor), asio::detached);
    std::thread fake_thread([&] { fake_io.run(); });
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1";

    std::printf("router load: %d requests, %d concurrent clients, %s, fake upstream on one thread, router on one thread\n", requests,
                concurrency, stream ? "streamed" : "non-streamed");
    run_direct(url, std::min(requests, 2000), concurrency, stream);  // warm-up
    const Result direct = run_direct(url, requests, concurrency, stream);
    report("client -> upstream (no router)", direct);

    const std::string yaml = "tiers:\n  - name: small\n    price_per_million: {input: 0.1, output: 0.2}\n    deployments:\n"
                             "      - {url: '" + url + "', model: fake}\n      - {url: '" + url + "', model: fake}\n"
                             "routes:\n  - {model: auto, policy: rules}\npolicies:\n  rules:\n    kind: rules\n    rules:\n"
                             "      - {when: {tools: true}, tier: small}\n      - {when: {task: extract}, tier: small}\n    default: small\n"
                             "limits:\n  keys:\n    default: {requests_per_minute: 100000000, tokens_per_minute: 1000000000}\n";
    slm::router::RouterConfig config = slm::router::parse_config(yaml, "bench.yaml");
    config.database = database;
    {
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
  return 0;
}
