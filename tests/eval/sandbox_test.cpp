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
  if (raw.network_isolated) {
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
