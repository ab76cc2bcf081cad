// The HumanEval sandbox: a correct solution passes, a wrong one fails, a runaway one is killed at
// the time limit, and network use and file writes outside the work folder fail.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "slm/eval/sandbox.hpp"
#include "slm/eval/tasks.hpp"

using namespace slm::eval;

namespace {
nlohmann::json humaneval_item(size_t index) {
  return read_jsonl(std::string(SLM_TEST_DATA) + "/eval/humaneval.jsonl").at(index);
}
SandboxResult run_completion(const nlohmann::json& item, const std::string& completion, double timeout_s = 10) {
  SandboxOptions o;
  o.timeout_s = timeout_s;
  o.cpu_s = int64_t(timeout_s) + 1;
  return run_python_sandboxed(humaneval_program(item.at("prompt").get<std::string>() + completion,
                                                item.at("test").get<std::string>(), item.at("entry_point").get<std::string>()),
                              o);
}
}  // namespace

TEST(Sandbox, CanonicalSolutionsPass) {
  for (size_t i = 0; i < 3; ++i) {
    const auto item = humaneval_item(i);
    const auto r = run_completion(item, item.at("canonical_solution").get<std::string>());
    EXPECT_TRUE(r.passed) << item.at("task_id") << ": " << r.output;
    EXPECT_EQ(r.exit_code, 0);
  }
}

TEST(Sandbox, WrongSolutionFails) {
  const auto r = run_completion(humaneval_item(0), "    return a - b\n");
  EXPECT_FALSE(r.passed);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.output.find("AssertionError"), std::string::npos) << r.output;
}

TEST(Sandbox, InfiniteLoopIsKilledAtTheTimeLimit) {
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_completion(humaneval_item(0), "    while True:\n        pass\n", 1.0);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(r.passed);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(elapsed, 5.0);
}

TEST(Sandbox, NoNetwork) {
  // Passes only if a TCP connection (or even a socket) can be made; it must fail both through the
  // socket module and through the raw _socket module.
  const auto guarded = run_python_sandboxed(
      "import socket\ns = socket.create_connection(('127.0.0.1', 9), timeout=1)\n");
  EXPECT_FALSE(guarded.passed);
  const auto raw = run_python_sandboxed(
      "import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\ns.settimeout(2)\n"
      "s.connect(('1.1.1.1', 53))\n");
  EXPECT_FALSE(raw.passed) << raw.output;
  if (raw.syscalls_filtered) {
    // The system call filter refuses the socket itself.
    EXPECT_NE(raw.output.find("Operation not permitted"), std::string::npos) << raw.output;
  } else if (raw.network_isolated) {
    // In a new network namespace there is no route at all.
    EXPECT_NE(raw.output.find("unreachable"), std::string::npos) << raw.output;
  } else {
    GTEST_LOG_(INFO) << "kernel refused a network namespace; only the Python guard applies";
  }
}

TEST(Sandbox, WritesStayInsideTheWorkFolder) {
  const std::filesystem::path outside =
      std::filesystem::temp_directory_path() / ("slm_eval_escape_" + std::to_string(::getpid()));
  std::filesystem::remove(outside);
  const auto r = run_python_sandboxed("open(" + nlohmann::json(outside.string()).dump() + ", 'w').write('x')\n");
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.output.find("PermissionError"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(outside));
  const auto os_open = run_python_sandboxed("import os\nos.open(" + nlohmann::json(outside.string()).dump() +
                                            ", os.O_WRONLY | os.O_CREAT)\n");
  EXPECT_FALSE(os_open.passed);
  EXPECT_FALSE(std::filesystem::exists(outside));
  // Inside its folder a program may write and read back.
  const auto inside = run_python_sandboxed("open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n");
  EXPECT_TRUE(inside.passed) << inside.output;
}

TEST(Sandbox, EnvironmentIsCleared) {
  ::setenv("SLM_EVAL_SECRET", "visible", 1);
  const auto r = run_python_sandboxed("import os\nassert 'SLM_EVAL_SECRET' not in os.environ\n");
  EXPECT_TRUE(r.passed) << r.output;
  ::unsetenv("SLM_EVAL_SECRET");
}

TEST(Sandbox, MemoryLimitStopsHugeAllocations) {
  SandboxOptions o;
  o.memory_bytes = int64_t(512) << 20;
  const auto r = run_python_sandboxed("x = bytearray(2 * 1024 ** 3)\n", o);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.output.find("MemoryError"), std::string::npos) << r.output;
}

// The kernel's barriers, reached around the Python guard through ctypes (libc's own open, fork and
// socket). Where the kernel refuses an isolation, the test says which and why instead of passing.
namespace {
std::string libc_program(const std::string& body) {
  return "import ctypes, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n" + body;
}
}  // namespace

TEST(Sandbox, KernelRefusesWritesOutsideTheWorkFolder) {
  const std::filesystem::path outside =
      std::filesystem::temp_directory_path() / ("slm_eval_kernel_escape_" + std::to_string(::getpid()));
  std::filesystem::remove(outside);
  const std::string in_build = std::string(SLM_BINARY_DIR) + "/slm_eval_kernel_escape_" + std::to_string(::getpid());
  std::filesystem::remove(in_build);
  // Exit 3 when every write failed with EROFS or EACCES; 0 when one succeeded.
  const auto r = run_python_sandboxed(libc_program(
      "failed = 0\n"
      "for path in (" + nlohmann::json(outside.string()).dump() + ", " + nlohmann::json(in_build).dump() + ", '/etc/slm_escape'):\n"
      "    fd = libc.open(path.encode(), 0o101, 0o644)\n"   // O_WRONLY | O_CREAT
      "    err = ctypes.get_errno()\n"
      "    print(path, fd, err)\n"
      "    if fd < 0 and err in (13, 30):\n"
      "        failed += 1\n"
      "fd = libc.open(b'inside.txt', 0o101, 0o644)\n"
      "print('inside', fd)\n"
      "sys.exit(3 if failed == 3 and fd >= 0 else 0)\n"));
  if (!r.filesystem_isolated) {
    GTEST_SKIP() << "the kernel refused a read-only mount namespace here (" << r.isolation
                 << "): writes outside the work folder are refused only by the Python guard";
  }
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_FALSE(std::filesystem::exists(outside));
  EXPECT_FALSE(std::filesystem::exists(in_build));
  EXPECT_NE(r.isolation.find("readonly-mounts"), std::string::npos) << r.isolation;
}

TEST(Sandbox, KernelRefusesNewProcessesAndSockets) {
  const auto r = run_python_sandboxed(libc_program(
      "pid = libc.fork()\n"
      "if pid == 0:\n"
      "    libc._exit(0)\n"  // a child that got created leaves at once; the parent then exits 0
      "fork_errno = ctypes.get_errno()\n"
      "s = libc.socket(2, 1, 0)\n"  // AF_INET, SOCK_STREAM
      "sock_errno = ctypes.get_errno()\n"
      "u = libc.socket(1, 1, 0)\n"  // AF_UNIX stays allowed
      "import threading\n"
      "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"  // threads still start
      "print(pid, fork_errno, s, sock_errno, u)\n"
      "sys.exit(3 if pid < 0 and fork_errno == 1 and s < 0 and sock_errno == 1 and u >= 0 else 0)\n"));
  if (!r.syscalls_filtered) {
    GTEST_SKIP() << "the kernel refused the seccomp filter here (" << r.isolation
                 << "): processes and sockets are refused only by the Python guard and the network namespace";
  }
  EXPECT_EQ(r.exit_code, 3) << r.output;
  // os.system through the original function (not the guard's) fails too.
  const auto sys = run_python_sandboxed(
      "import posix\nrc = posix.system('true')\nimport sys\nsys.exit(3 if rc != 0 else 0)\n");
  EXPECT_EQ(sys.exit_code, 3) << sys.output;
}
