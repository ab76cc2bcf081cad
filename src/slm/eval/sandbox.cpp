#include "slm/eval/sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <vector>

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

// A mount point to make read-only, with the flags it has (a user namespace may not clear them).
struct MountPoint {
  std::string path;
  unsigned long flags = 0;
};

std::string unescape_mount_path(const std::string& s) {
  // /proc/self/mountinfo writes space, tab, newline and backslash as \ooo.
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<MountPoint> read_mounts() {
  std::vector<MountPoint> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    if (!(fields >> id >> parent >> dev >> root >> mount_point)) continue;
    MountPoint m;
    m.path = unescape_mount_path(mount_point);
    struct statvfs st;
    if (statvfs(m.path.c_str(), &st) == 0) {
      if (st.f_flag & ST_NOSUID) m.flags |= MS_NOSUID;
      if (st.f_flag & ST_NODEV) m.flags |= MS_NODEV;
      if (st.f_flag & ST_NOEXEC) m.flags |= MS_NOEXEC;
      if (st.f_flag & ST_NOATIME) m.flags |= MS_NOATIME;
      if (st.f_flag & ST_NODIRATIME) m.flags |= MS_NODIRATIME;
      if (st.f_flag & ST_RELATIME) m.flags |= MS_RELATIME;
    }
    out.push_back(std::move(m));
  }
  return out;
}

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr uint32_t kAuditArch = 0;  // no filter on other architectures
#endif

// The seccomp program: another architecture's calls kill the process; fork, vfork and clone without
// CLONE_THREAD fail with EPERM (threads still start; clone3 answers ENOSYS so that libc falls back to
// clone, whose flags the filter can read); sockets other than AF_UNIX fail; so do calls that could
// undo the isolation or reach around it (mount, namespaces, ptrace, io_uring, bpf, modules).
std::vector<sock_filter> seccomp_program() {
  std::vector<sock_filter> f;
  auto stmt = [&](uint16_t code, uint32_t k) { f.push_back(BPF_STMT(code, k)); };
  auto jump = [&](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { f.push_back(BPF_JUMP(code, k, jt, jf)); };
  const uint32_t eperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
  jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);  // x32 calls
  stmt(BPF_RET | BPF_K, eperm);
#endif
  const long denied[] = {
#ifdef __NR_fork
      __NR_fork,
#endif
#ifdef __NR_vfork
      __NR_vfork,
#endif
      __NR_ptrace, __NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot, __NR_unshare, __NR_setns,
      __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register, __NR_bpf, __NR_perf_event_open,
      __NR_process_vm_writev, __NR_init_module, __NR_finit_module, __NR_delete_module, __NR_kexec_load,
      __NR_reboot, __NR_swapon, __NR_swapoff, __NR_open_by_handle_at, __NR_keyctl, __NR_add_key,
      __NR_request_key, __NR_userfaultfd,
#ifdef __NR_open_tree
      __NR_open_tree, __NR_move_mount, __NR_fsopen, __NR_fsconfig, __NR_fsmount, __NR_fspick,
#endif
#ifdef __NR_mount_setattr
      __NR_mount_setattr,
#endif
  };
  for (long nr : denied) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, uint32_t(nr), 0, 1);
    stmt(BPF_RET | BPF_K, eperm);
  }
#ifdef __NR_clone3
  jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
#endif
  // clone(flags, ...): a thread (CLONE_THREAD) may start, a process may not.
  jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  stmt(BPF_RET | BPF_K, eperm);
  // socket(domain, ...) and socketpair: Unix sockets only.
  for (long nr : {long(__NR_socket), long(__NR_socketpair)}) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, uint32_t(nr), 0, 4);
    stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    jump(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1);
    stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    stmt(BPF_RET | BPF_K, eperm);
  }
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  return f;
}

// What the child reports through the pipe before it runs the program.
struct ChildReport {
  uint8_t network = 0, filesystem = 0, seccomp = 0, nobody = 0;
  int32_t namespace_errno = 0, mount_errno = 0, seccomp_errno = 0;
};

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
  // Everything the child needs is prepared here: between fork and exec it makes system calls only
  // (this process may have other threads, whose locks a forked child must not wait on).
  const std::vector<MountPoint> mounts = options.isolate_filesystem ? read_mounts() : std::vector<MountPoint>{};
  const std::vector<sock_filter> filter = seccomp_program();
  const struct sock_fprog program_filter = {static_cast<unsigned short>(filter.size()), const_cast<sock_filter*>(filter.data())};
  const bool root = geteuid() == 0;
  const std::string uid_map = "0 " + std::to_string(geteuid()) + " 1\n";
  const std::string gid_map = "0 " + std::to_string(getegid()) + " 1\n";
  const std::string deny = "deny";
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) fail(ErrorKind::io, "sandbox: pipe failed: {}", std::strerror(errno));
  const std::string dir_s = dir.string();
  const std::string out_path = dir_s + "/output.txt";
  const std::string home_env = "HOME=" + dir_s, tmp_env = "TMPDIR=" + dir_s;
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
    ChildReport rep;
    if (chdir(dir_s.c_str()) != 0) _exit(126);
    const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    // New namespaces: as root directly; otherwise inside a new user namespace where this process is
    // root (mapped to its own uid), which lets it mount.
    const int wanted = (options.isolate_network ? CLONE_NEWNET : 0) | (options.isolate_filesystem ? CLONE_NEWNS : 0);
    bool in_namespaces = false;
    if (wanted != 0) {
      if (root) {
        in_namespaces = unshare(wanted) == 0;
      } else if (unshare(CLONE_NEWUSER | wanted) == 0) {
        in_namespaces = true;
        auto write_file = [](const char* path, const std::string& text) {
          const int f = open(path, O_WRONLY);
          if (f < 0) return false;
          const bool ok = write(f, text.data(), text.size()) == ssize_t(text.size());
          close(f);
          return ok;
        };
        write_file("/proc/self/setgroups", deny);
        if (!write_file("/proc/self/uid_map", uid_map) || !write_file("/proc/self/gid_map", gid_map)) rep.mount_errno = errno;
      }
      if (!in_namespaces) rep.namespace_errno = errno;
    }
    if (in_namespaces) {
      rep.network = options.isolate_network ? 1 : 0;
    } else if (options.isolate_network && (unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0)) {
      rep.network = 1;
    }
    // Every mount read-only, the work folder (bound onto itself first) excepted. A network namespace
    // has only a loopback device, and that one down.
    if (in_namespaces && options.isolate_filesystem && rep.mount_errno == 0) {
      bool ok = mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
                mount(dir_s.c_str(), dir_s.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0;
      if (!ok) rep.mount_errno = errno;
      for (size_t i = 0; ok && i < mounts.size(); ++i) {
        if (mount(nullptr, mounts[i].path.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | mounts[i].flags, nullptr) != 0 &&
            errno != ENOENT) {
          rep.mount_errno = errno;
          ok = false;
        }
      }
      rep.filesystem = ok ? 1 : 0;
      // The working directory still names the folder under the bind mount: enter the writable one.
      if (chdir(dir_s.c_str()) != 0) _exit(126);
    }
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
    // Root gives up its privileges: the program runs as "nobody" (the folder is open to others).
    if (root && setgroups(0, nullptr) == 0 && setgid(65534) == 0 && setuid(65534) == 0) rep.nobody = 1;
    set_limit(RLIMIT_CPU, options.cpu_s);
    set_limit(RLIMIT_AS, options.memory_bytes);
    set_limit(RLIMIT_FSIZE, options.file_bytes);
    set_limit(RLIMIT_NOFILE, options.open_files);
    set_limit(RLIMIT_CORE, 0);
    if (options.filter_syscalls && kAuditArch != 0) {
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program_filter) == 0) {
        rep.seccomp = 1;
      } else {
        rep.seccomp_errno = errno;
      }
    }
    // Without the filter, the process limit is the barrier to new processes (it also stops threads,
    // and binds no root). It counts every process of the user, so not after the switch to nobody.
    if (!rep.seccomp && !rep.nobody) set_limit(RLIMIT_NPROC, options.processes);
    (void)!write(report[1], &rep, sizeof rep);
    char* const envp[] = {const_cast<char*>("PATH=/usr/local/bin:/usr/bin:/bin"), const_cast<char*>(home_env.c_str()),
                          const_cast<char*>(tmp_env.c_str()), const_cast<char*>("LANG=C.UTF-8"), nullptr};
    char* const argv[] = {const_cast<char*>(options.python.c_str()), const_cast<char*>("-I"), const_cast<char*>("-B"),
                          const_cast<char*>("-c"), const_cast<char*>(runner.c_str()), nullptr};
    execvpe(options.python.c_str(), argv, envp);
    _exit(127);
  }
  close(report[1]);
  SandboxResult result;
  ChildReport rep;
  if (read(report[0], &rep, sizeof rep) == ssize_t(sizeof rep)) {
    result.network_isolated = rep.network != 0;
    result.filesystem_isolated = rep.filesystem != 0;
    result.syscalls_filtered = rep.seccomp != 0;
    std::string enforced, refused;
    auto add = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : ",") + item; };
    if (rep.network) add(enforced, "netns");
    if (rep.filesystem) add(enforced, "readonly-mounts");
    if (rep.seccomp) add(enforced, "seccomp");
    if (rep.nobody) add(enforced, "nobody");
    if (rep.namespace_errno) add(refused, std::string("namespaces (") + std::strerror(rep.namespace_errno) + ")");
    if (rep.mount_errno) add(refused, std::string("read-only mounts (") + std::strerror(rep.mount_errno) + ")");
    if (rep.seccomp_errno) add(refused, std::string("seccomp (") + std::strerror(rep.seccomp_errno) + ")");
    if (options.filter_syscalls && kAuditArch == 0) add(refused, "seccomp (no filter for this architecture)");
    result.isolation = enforced.empty() ? "none" : enforced;
    if (!refused.empty()) result.isolation += "; refused: " + refused;
  }
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
