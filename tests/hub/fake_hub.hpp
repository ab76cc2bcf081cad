// Starts tests/hub/fake_hub.py (a stand-in for the Hugging Face hub on 127.0.0.1) for one test,
// and helpers shared by the hub tests.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "slm/format/gguf.hpp"
#include "slm/hub/http.hpp"

#include "../common/scratch.hpp"

extern char** environ;

namespace slm::hub::test {

namespace fs = std::filesystem;

inline constexpr char hub_scratch_prefix[] = "slm_hub_test_";

// This process's scratch folder, removed when the process ends.
inline fs::path temp_root() { return slm_test::process_scratch<hub_scratch_prefix>(); }

// A fresh folder for one test.
inline fs::path fresh_dir(const std::string& name) { return slm_test::fresh_dir_under(temp_root(), name); }

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A small valid GGUF file: a few metadata keys and one f32 tensor of random values (never all zero).
inline fs::path make_gguf(const fs::path& path, size_t n_floats, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> data(n_floats);
  for (auto& v : data) v = dist(rng) + 0.001f;
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::of_string("llama"));
  w.set("general.name", gguf::Value::of_string(path.filename().string()));
  w.add_tensor("token_embd.weight", DType::F32, {uint64_t(n_floats)}, data.data());
  fs::create_directories(path.parent_path());
  w.write(path.string());
  return path;
}

class FakeHub {
 public:
  explicit FakeHub(const nlohmann::json& config) {
    static int counter = 0;
    config_path_ = temp_root() / ("fake_hub_" + std::to_string(counter++) + ".json");
    std::ofstream(config_path_) << config.dump();
    int in_pipe[2], out_pipe[2];
    if (::pipe(in_pipe) != 0 || ::pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_addclose(&actions, in_pipe[1]);
    posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
    const std::string script = std::string(SLM_SOURCE_DIR) + "/tests/hub/fake_hub.py";
    const std::string config_arg = config_path_.string();
    std::vector<char*> argv = {const_cast<char*>("python3"), const_cast<char*>(script.c_str()),
                               const_cast<char*>("--config"), const_cast<char*>(config_arg.c_str()),
                               const_cast<char*>("--max-seconds"), const_cast<char*>("300"), nullptr};
    const int rc = posix_spawnp(&pid_, "python3", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    stdin_fd_ = in_pipe[1];
    if (rc != 0) {
      ::close(out_pipe[0]);
      throw std::runtime_error("cannot start python3 for the fake hub");
    }
    // Wait (bounded) for "READY <hub_port> <cdn_port>".
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_pipe[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, size_t(n));
    }
    ::close(out_pipe[0]);
    int hub_port = 0, cdn_port = 0;
    if (std::sscanf(line.c_str(), "READY %d %d", &hub_port, &cdn_port) != 2) {
      stop();
      throw std::runtime_error("the fake hub did not start: '" + line + "'");
    }
    endpoint_ = "http://127.0.0.1:" + std::to_string(hub_port);
    cdn_port_ = cdn_port;
  }
  ~FakeHub() { stop(); }
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  int cdn_port() const { return cdn_port_; }

  nlohmann::json control(const std::string& what) const {
    HttpClient http(HttpOptions{});
    const auto r = http.get(endpoint_ + "/_control/" + what);
    if (r.status != 200) throw std::runtime_error("control " + what + " answered " + std::to_string(r.status));
    return nlohmann::json::parse(r.body);
  }
  // Bytes of owner/repo/path served so far (both servers).
  uint64_t bytes_served(const std::string& key) const {
    const auto s = control("stats");
    return s["bytes"].contains(key) ? s["bytes"][key].get<uint64_t>() : 0;
  }

 private:
  void stop() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
    if (pid_ > 0) {
      int status = 0;
      for (int i = 0; i < 50; ++i) {  // it exits when its standard input closes
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  fs::path config_path_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::string endpoint_;
  int cdn_port_ = 0;
};

// Environment for tests that talk to 127.0.0.1: no proxy may intercept it.
inline void no_proxy_for_loopback() {
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
}

}  // namespace slm::hub::test
