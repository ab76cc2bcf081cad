// Runs untrusted Python (a HumanEval completion and its tests) in a separate python3 process: a fresh
// temporary folder as its working directory, a cleared environment, setrlimit limits on CPU time,
// address space, file size and open files, a wall-clock limit after which the process group is
// killed. The kernel enforces the rest where it allows: new mount and network namespaces (every
// mount read-only but the work folder, no network interface up), a seccomp filter (no new
// processes, no sockets but Unix ones, no mount, ptrace, namespace or io_uring calls), and, when
// started as root, the uid and gid of "nobody". A guard run before the code also refuses file
// writes outside the folder, sockets and subprocesses at the Python level.
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
  int64_t processes = 1;                 // RLIMIT_NPROC, only where the filter and the uid change are not in force
  bool isolate_network = true;           // a new network namespace
  bool isolate_filesystem = true;        // a new mount namespace, read-only but the work folder
  bool filter_syscalls = true;           // the seccomp filter
  std::string python = "python3";
};

struct SandboxResult {
  bool passed = false;      // exited with status 0 in time
  bool timed_out = false;
  int exit_code = -1;       // -1 when killed by a signal
  int signal = 0;
  bool network_isolated = false;     // a new network namespace was entered
  bool filesystem_isolated = false;  // every mount but the work folder read-only
  bool syscalls_filtered = false;    // the seccomp filter was installed
  // What the kernel enforced, e.g. "netns,readonly-mounts,seccomp,nobody"; what it refused, with the
  // error, after "refused:".
  std::string isolation;
  std::string output;       // stdout and stderr, at most 4 KiB
};

SandboxResult run_python_sandboxed(const std::string& program, const SandboxOptions& options = {});

// The HumanEval program lm-eval runs: completion (prompt + generated body), then the tests, then
// check(entry_point).
std::string humaneval_program(const std::string& prompt_and_completion, const std::string& test,
                              const std::string& entry_point);

}  // namespace slm::eval
