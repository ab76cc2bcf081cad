// Shared pieces of the router tests: the scripted fake upstream (fake_upstream.py) as a child
// process, a tiny HTTP client for its control endpoints, and a ResponseSink that records what the
// router answered.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "slm/router/router.hpp"

#include "../common/scratch.hpp"

extern char** environ;

namespace slm::router::test {

namespace fs = std::filesystem;

inline constexpr char router_scratch_prefix[] = "slm_router_test_";

// This process's scratch folder, removed when the process ends.
inline fs::path temp_root() { return slm_test::process_scratch<router_scratch_prefix>(); }

// A fresh folder for one test.
inline fs::path fresh_dir(const std::string& name) { return slm_test::fresh_dir_under(temp_root(), name); }

// One HTTP/1.0-style exchange (Connection: close); returns the body. Status in *status.
inline std::string http_request(int port, const std::string& method, const std::string& path, const std::string& body = "",
                                int* status = nullptr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t off = 0;
  while (off < req.size()) {
    const ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += size_t(n);
  }
  std::string resp;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, size_t(n));
  }
  ::close(fd);
  if (status) *status = resp.size() > 12 ? std::stoi(resp.substr(9, 3)) : 0;
  const size_t h = resp.find("\r\n\r\n");
  return h == std::string::npos ? "" : resp.substr(h + 4);
}

class FakeUpstream {
 public:
  explicit FakeUpstream(const std::string& name) {
    int in_pipe[2], out_pipe[2];
    if (::pipe(in_pipe) != 0 || ::pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_addclose(&actions, in_pipe[1]);
    posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
    const std::string script = std::string(SLM_SOURCE_DIR) + "/tests/router/fake_upstream.py";
    std::vector<std::string> args = {"python3", script, "--name", name, "--max-seconds", "600"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "python3", &actions, nullptr, argv.data(), environ) != 0) throw std::runtime_error("spawn failed");
    posix_spawn_file_actions_destroy(&actions);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    stdin_fd_ = in_pipe[1];
    std::string line;
    char c;
    pollfd p{out_pipe[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos) {
      if (::poll(&p, 1, 20000) <= 0 || ::read(out_pipe[0], &c, 1) != 1) break;
      line += c;
    }
    ::close(out_pipe[0]);
    if (line.rfind("READY ", 0) != 0) throw std::runtime_error("fake upstream did not start: " + line);
    port_ = std::stoi(line.substr(6));
  }
  ~FakeUpstream() {
    ::close(stdin_fd_);
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  void script(const nlohmann::json& actions, const nlohmann::json& default_action = nullptr) {
    nlohmann::json body{{"actions", actions}};
    if (!default_action.is_null()) body["default"] = default_action;
    http_request(port_, "POST", "/_control/script", body.dump());
  }
  nlohmann::json stats() { return nlohmann::json::parse(http_request(port_, "GET", "/_control/stats")); }

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int port_ = 0;
};

// Records one response.
class RecordingSink : public server::ResponseSink {
 public:
  void finish_json(const nlohmann::json& body) override {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    json = body;
    ended_ = true;
    cv_.notify_all();
  }
  void send_event(const std::string& data) override {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    events.push_back(nlohmann::json::parse(data));
  }
  void end_stream() override {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    stream_done = true;
    ended_ = true;
    cv_.notify_all();
  }
  void fail(const server::ApiError& e) override {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    error = e;
    failed = true;
    ended_ = true;
    cv_.notify_all();
  }
  bool cancelled() const override { return cancelled_; }
  void on_cancel(std::function<void()> cb) override {
    std::lock_guard lock(mutex_);
    callback_ = std::move(cb);
  }
  // The client goes away.
  void cancel() {
    std::function<void()> cb;
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
      cb = callback_;
    }
    if (cb) cb();
  }
  bool wait(double seconds = 20) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return ended_; });
  }
  size_t event_count() {
    std::lock_guard lock(mutex_);
    return events.size();
  }
  // Concatenated delta.content of the events.
  std::string streamed_text() {
    std::lock_guard lock(mutex_);
    std::string s;
    for (const auto& e : events) {
      if (e.contains("choices") && !e["choices"].empty() && e["choices"][0].contains("delta") &&
          e["choices"][0]["delta"].contains("content")) {
        s += e["choices"][0]["delta"]["content"].get<std::string>();
      }
    }
    return s;
  }

  nlohmann::json json;
  std::vector<nlohmann::json> events;
  bool stream_done = false;
  bool failed = false;
  server::ApiError error;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool ended_ = false;
  bool cancelled_ = false;
  std::function<void()> callback_;
};

inline nlohmann::json chat_request(const std::string& model, const std::string& text, bool stream = false) {
  nlohmann::json r{{"model", model}, {"messages", {{{"role", "user"}, {"content", text}}}}};
  if (stream) r["stream"] = true;
  return r;
}

inline server::RequestInfo request_info(const std::string& id, const std::string& key = "", std::map<std::string, std::string> headers = {}) {
  server::RequestInfo info;
  info.request_id = id;
  info.api_key = key;
  info.headers = std::move(headers);
  return info;
}

}  // namespace slm::router::test
