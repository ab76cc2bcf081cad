// Starts `slm serve` on a free port for the black-box tests and talks raw HTTP/1.1 to it.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace slm_test {

namespace fs = std::filesystem;

inline std::string demo_model() { return (fs::path(SLM_SOURCE_DIR) / "models" / "demo" / "demo-q8_0.gguf").string(); }

// A running `slm serve ARGS --port 0`; stopped (SIGTERM, then SIGKILL) when destroyed.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    log_ = fs::temp_directory_path() / ("slm_serve_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++) + ".log");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const int err = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) ::dup2(err, 2);
      ::close(out[0]);
      std::vector<std::string> all = {SLM_EXE, "serve"};
      all.insert(all.end(), args.begin(), args.end());
      all.push_back("--port");
      all.push_back("0");
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(SLM_EXE, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    // The first line on stdout is "listening on http://HOST:PORT".
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, size_t(n));
    }
    ::close(out[0]);
    const size_t at = line.find("http://");
    const size_t colon = line.rfind(':');
    if (at == std::string::npos || colon == std::string::npos || colon < at + 7) {
      stop();
      throw std::runtime_error("slm serve did not print its URL; stdout: '" + line + "'; log: " + log_.string());
    }
    url_ = line.substr(at, line.find('\n') - at);
    port_ = std::stoi(line.substr(colon + 1));
  }
  ~ServerProcess() { stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  const std::string& url() const { return url_; }
  const fs::path& log() const { return log_; }
  bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::string url_;
  fs::path log_;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;                            // de-chunked
};

inline int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  timeval tv{60, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

inline void send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close early (413): the response still comes
    sent += size_t(n);
  }
}

inline std::string dechunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    const size_t n = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
    if (n == 0) break;
    out += body.substr(eol + 2, n);
    pos = eol + 2 + n + 2;
  }
  return out;
}

inline HttpResponse parse_response(const std::string& raw) {
  HttpResponse r;
  const size_t end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos) throw std::runtime_error("no HTTP response: '" + raw + "'");
  r.status = std::stoi(raw.substr(9, 3));
  size_t pos = raw.find("\r\n") + 2;
  while (pos < end) {
    const size_t eol = raw.find("\r\n", pos);
    const std::string line = raw.substr(pos, eol - pos);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      r.headers[name] = line.substr(v);
    }
    pos = eol + 2;
  }
  r.body = raw.substr(end + 4);
  if (r.headers["transfer-encoding"] == "chunked") r.body = dechunk(r.body);
  return r;
}

// Sends `raw` as is and reads until the server closes the connection.
inline HttpResponse raw_exchange(int port, const std::string& raw) {
  const int fd = connect_to(port);
  send_all(fd, raw);
  std::string in;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, size_t(n));
  }
  ::close(fd);
  return parse_response(in);
}

inline std::string request_text(const std::string& method, const std::string& path, const std::string& body,
                                 const std::vector<std::string>& headers = {}) {
  std::string raw = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& h : headers) raw += h + "\r\n";
  if (!body.empty() || method == "POST") {
    raw += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return raw + "\r\n" + body;
}

inline HttpResponse http(int port, const std::string& method, const std::string& path, const std::string& body = "",
                         const std::vector<std::string>& headers = {}) {
  return raw_exchange(port, request_text(method, path, body, headers));
}

// The value of an unlabelled or labelled sample in Prometheus text ("name" or "name{...}").
inline double metric(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name, pos)) != std::string::npos) {
    const bool line_start = pos == 0 || text[pos - 1] == '\n';
    const size_t after = pos + name.size();
    if (line_start && after < text.size() && (text[after] == ' ' || text[after] == '{')) {
      const size_t space = text.find(' ', text[after] == '{' ? text.find('}', after) : after);
      return std::stod(text.substr(space + 1, text.find('\n', space) - space - 1));
    }
    pos = after;
  }
  return -1.0;
}

// Polls `condition` until it holds or `seconds` pass (a deadline, not a count of tries: on a loaded
// machine each try may take long); returns whether it held.
template <class Condition>
bool wait_until(Condition condition, double seconds = 30.0) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace slm_test
