#include "slm/eval/sandbox.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "slm/util/error.hpp"

namespace slm::eval {
namespace {

// Run before the untrusted code: writes outside the working folder, sockets and new processes fail.
constexpr const char* kGuard = R"PY(
import builtins as _b, os as _os, io as _io
_root = _os.path.realpath(_os.getcwd())
def _inside(p):
    try:
        r = _os.path.realpath(_os.fspath(p))
    except Exception:
        return False
    return r == _root or r.startswith(_root + _os.sep)
_open = _b.open
def _guarded_open(file, mode='r', *a, **k):
    if isinstance(file, int) or any(c in mode for c in 'wax+'):
        if not isinstance(file, int) and not _inside(file):
            raise PermissionError('sandbox: write outside the work folder: ' + str(file))
    return _open(file, mode, *a, **k)
_b.open = _guarded_open
_io.open = _guarded_open
_osopen = _os.open
def _guarded_osopen(path, flags, *a, **k):
    if flags & (_os.O_WRONLY | _os.O_RDWR | _os.O_CREAT) and not _inside(path):
        raise PermissionError('sandbox: write outside the work folder: ' + str(path))
    return _osopen(path, flags, *a, **k)
_os.open = _guarded_osopen
def _refuse(*a, **k):
    raise PermissionError('sandbox: not allowed')
for _n in ('remove', 'unlink', 'rmdir', 'removedirs', 'rename', 'renames', 'replace', 'truncate', 'chmod',
           'chown', 'link', 'symlink', 'kill', 'killpg', 'fork', 'forkpty', 'system', 'popen', 'execv', 'execve',
           'execvp', 'execvpe', 'spawnv', 'spawnve', 'setuid', 'putenv', 'chdir', 'fchdir', 'mkdir', 'makedirs'):
    if hasattr(_os, _n):
        setattr(_os, _n, _refuse)
import socket as _socket
class _NoSocket:
    def __init__(self, *a, **k):
        raise PermissionError('sandbox: network not allowed')
_socket.socket = _NoSocket
_socket.create_connection = _refuse
import subprocess as _sp
_sp.Popen = _NoSocket
_sp.run = _refuse
_sp.call = _refuse
_sp.check_output = _refuse
del _b, _io
)PY";

void set_limit(int resource, int64_t value) {
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = rlim_t(value);
  setrlimit(resource, &rl);
}

std::string read_head(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string out(max_bytes, '\0');
  in.read(out.data(), std::streamsize(max_bytes));
  out.resize(size_t(in.gcount()));
  return out;
}

}  // namespace

std::string humaneval_program(const std::string& prompt_and_completion, const std::string& test,
                              const std::string& entry_point) {
  return prompt_and_completion + "\n" + test + "\n" + "check(" + entry_point + ")\n";
}

SandboxResult run_python_sandboxed(const std::string& program, const SandboxOptions& options) {
  char pattern[] = "/tmp/slm-eval-XXXXXX";
  if (!mkdtemp(pattern)) fail(ErrorKind::io, "sandbox: cannot create a temporary folder: {}", std::strerror(errno));
  const std::filesystem::path dir = pattern;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  {
    std::ofstream out(dir / "program.py", std::ios::binary);
    out << program;
    std::ofstream guard(dir / "guard.py", std::ios::binary);
    guard << kGuard;
    if (!out || !guard) fail(ErrorKind::io, "sandbox: cannot write the program into {}", dir.string());
  }
  std::filesystem::permissions(dir, std::filesystem::perms::all);
  // The child reports whether it got a network namespace through a pipe (one byte).
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) fail(ErrorKind::io, "sandbox: pipe failed: {}", std::strerror(errno));
  const std::string dir_s = dir.string();
  const std::string out_path = dir_s + "/output.txt";
  // Runs the guard, then the program, in one interpreter: isolated mode (-I: no user site, no PYTHON*
  // variables, no script folder on sys.path), no .pyc files (-B).
  const std::string runner = "exec(compile(open('guard.py').read(),'guard.py','exec'));"
                                                          "import runpy;runpy.run_path('program.py', run_name='__main__')";
  const pid_t pid = fork();
  if (pid < 0) {
    close(report[0]);
    close(report[1]);
    fail(ErrorKind::io, "sandbox: fork failed: {}", std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    setpgid(0, 0);
    char isolated = 0;
    if (chdir(dir_s.c_str()) != 0) _exit(126);
    const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    // A new network namespace has only a loopback device, and that one down. Without privileges a
    // new user namespace comes first (the folder is then reached as "other", hence its mode).
    if (options.isolate_network) {
      if (unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) isolated = 1;
    }
    (void)!write(report[1], &isolated, 1);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      close(null_fd);
    }
    set_limit(RLIMIT_CPU, options.cpu_s);
    set_limit(RLIMIT_AS, options.memory_bytes);
    set_limit(RLIMIT_FSIZE, options.file_bytes);
    set_limit(RLIMIT_NOFILE, options.open_files);
    set_limit(RLIMIT_NPROC, options.processes);
    set_limit(RLIMIT_CORE, 0);
    const std::string home = "HOME=" + dir_s, tmp = "TMPDIR=" + dir_s;
    char* const envp[] = {const_cast<char*>("PATH=/usr/local/bin:/usr/bin:/bin"), const_cast<char*>(home.c_str()),
                          const_cast<char*>(tmp.c_str()), const_cast<char*>("LANG=C.UTF-8"), nullptr};
    char* const argv[] = {const_cast<char*>(options.python.c_str()), const_cast<char*>("-I"), const_cast<char*>("-B"),
                          const_cast<char*>("-c"), const_cast<char*>(runner.c_str()), nullptr};
    execvpe(options.python.c_str(), argv, envp);
    _exit(127);
  }
  close(report[1]);
  SandboxResult result;
  char isolated = 0;
  if (read(report[0], &isolated, 1) == 1) result.network_isolated = isolated != 0;
  close(report[0]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.timeout_s);
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(-pid, SIGKILL);  // anything the program left behind in its group
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  result.passed = !result.timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  result.output = read_head(out_path, 4096);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && result.output.empty()) {
    fail(ErrorKind::not_found, "sandbox: cannot run '{}'", options.python);
  }
  return result;
}

}  // namespace slm::eval
