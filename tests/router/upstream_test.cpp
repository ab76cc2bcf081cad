// The upstream HTTP client alone: URLs, connection reuse across plain and streamed answers,
// server-sent events one by one, errors.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "router_test_util.hpp"
#include "slm/router/upstream.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

TEST(Upstream, ParsesUrls) {
  Url u = Url::parse("https://api.example.com/v1/");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "api.example.com");
  EXPECT_EQ(u.port, "443");
  EXPECT_EQ(u.base_path, "/v1");
  u = Url::parse("http://127.0.0.1:8080");
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.port, "8080");
  EXPECT_EQ(u.base_path, "");
  EXPECT_THROW(Url::parse("ftp://x"), Error);
  EXPECT_THROW(Url::parse("http://:80/v1"), Error);
  EXPECT_THROW(Url::parse("http://host:80a/v1"), Error);
}

// Runs `calls` requests one after another on one io_context; returns the events of each.
std::vector<std::vector<Event>> run_calls(asio::io_context& io, UpstreamDeployment& d, const std::vector<std::pair<nlohmann::json, bool>>& calls) {
  std::vector<std::vector<Event>> out(calls.size());
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (size_t i = 0; i < calls.size(); ++i) {
          auto q = std::make_shared<EventQueue>(io.get_executor());
          CallOptions o;
          o.stream = calls[i].second;
          o.timeout_s = 10;
          o.first_byte_timeout_s = 10;
          auto handle = d.start(Endpoint::chat, calls[i].first, o, q);
          for (;;) {
            Event e = co_await q->next(Clock::now() + std::chrono::seconds(15));
            out[i].push_back(e);
            if (e.kind != Event::Kind::chunk) break;
          }
        }
      },
      asio::detached);
  io.run();
  return out;
}

TEST(Upstream, ReusesConnectionsAndStreamsEvents) {
  test::FakeUpstream fake("up");
  asio::io_context io;
  auto d = UpstreamDeployment::create(io, Url::parse(fake.url()), "sk-secret", "m1");
  const auto plain = test::chat_request("x", "one two");
  const auto streamed = test::chat_request("x", "a b c", true);
  const auto results = run_calls(io, *d, {{plain, false}, {streamed, true}, {plain, false}, {streamed, true}, {plain, false}});
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results[0].back().kind, Event::Kind::json);
  EXPECT_EQ(results[0].back().body["choices"][0]["message"]["content"], "up: one two");
  // Streamed: one event per word of "up: a b c", the finish chunk, the usage chunk, then done.
  ASSERT_EQ(results[1].size(), 4u + 2u + 1u);
  EXPECT_EQ(results[1][0].body["choices"][0]["delta"]["content"], "up:");
  EXPECT_EQ(results[1][5].body["usage"]["completion_tokens"], 4);
  EXPECT_EQ(results[1].back().kind, Event::Kind::done);
  EXPECT_EQ(results[4].back().kind, Event::Kind::json);
  EXPECT_EQ(d->stats().requests, 5u);
  EXPECT_EQ(d->stats().connections_opened, 1u);  // kept alive across plain and chunked answers
  const auto bodies = fake.stats()["bodies"];
  EXPECT_EQ(bodies[0]["model"], "m1");
  EXPECT_FALSE(bodies[0].contains("stream_options"));
}

TEST(Upstream, ErrorsAreRetryableOrNot) {
  test::FakeUpstream fake("up");
  fake.script({{{"mode", "status"}, {"status", 503}}, {{"mode", "status"}, {"status", 404}}, {{"mode", "malformed"}}});
  asio::io_context io;
  auto d = UpstreamDeployment::create(io, Url::parse(fake.url()), "", "");
  const auto r = test::chat_request("x", "q");
  const auto results = run_calls(io, *d, {{r, false}, {r, false}, {r, false}});
  ASSERT_EQ(results[0].back().kind, Event::Kind::error);
  EXPECT_EQ(results[0].back().status, 503);
  EXPECT_TRUE(results[0].back().retryable);
  EXPECT_NE(results[0].back().message.find("up scripted 503"), std::string::npos) << results[0].back().message;
  EXPECT_EQ(results[1].back().status, 404);
  EXPECT_FALSE(results[1].back().retryable);
  EXPECT_EQ(results[2].back().kind, Event::Kind::error);
  EXPECT_TRUE(results[2].back().retryable);
  EXPECT_NE(results[2].back().message.find("malformed JSON"), std::string::npos);

  // Nothing listening: a retryable connection error.
  asio::io_context io2;
  auto dead = UpstreamDeployment::create(io2, Url::parse("http://127.0.0.1:1/v1"), "", "");
  const auto r2 = run_calls(io2, *dead, {{r, false}});
  EXPECT_EQ(r2[0].back().kind, Event::Kind::error);
  EXPECT_EQ(r2[0].back().status, 0);
  EXPECT_TRUE(r2[0].back().retryable);
}

}  // namespace
}  // namespace slm::router
