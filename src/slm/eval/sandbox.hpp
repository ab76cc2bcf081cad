// Runs untrusted Python (a HumanEval completion and its tests) in a separate python3 process: a fresh
// temporary folder as its working directory, a cleared environment, setrlimit limits on CPU time,
// address space, file size, open files and processes, a wall-clock limit after which the process group
// is killed, a new network namespace when the kernel allows one, and a guard run before the code that
// refuses file writes outside the folder, sockets and subprocesses at the Python level.
#pragma once

#include <cstdint>
#include <string>

namespace slm::eval {

struct SandboxOptions {
  double timeout_s = 10;                 // wall clock
  int64_t cpu_s = 10;                    // RLIMIT_CPU
  int64_t memory_bytes = int64_t(1) << 31;  // RLIMIT_AS
  int64_t file_bytes = int64_t(16) << 20;   // RLIMIT_FSIZE
  int64_t open_files = 64;               // RLIMIT_NOFILE
  int64_t processes = 1;                 // RLIMIT_NPROC (not enforced for root)
  bool isolate_network = true;           // unshare(CLONE_NEWUSER | CLONE_NEWNET), else CLONE_NEWNET
  std::string python = "python3";
};

struct SandboxResult {
  bool passed = false;      // exited with status 0 in time
  bool timed_out = false;
  int exit_code = -1;       // -1 when killed by a signal
  int signal = 0;
  bool network_isolated = false;  // a new network namespace was entered
  std::string isolation;          // what the kernel enforced, e.g. "netns,mountns-readonly,seccomp"
  std::string output;       // stdout and stderr, at most 4 KiB
};

SandboxResult run_python_sandboxed(const std::string& program, const SandboxOptions& options = {});

// The HumanEval program lm-eval runs: completion (prompt + generated body), then the tests, then
// check(entry_point).
std::string humaneval_program(const std::string& prompt_and_completion, const std::string& test,
                              const std::string& entry_point);

}  // namespace slm::eval
