// Test-only: runs a binary (the real `signround`) with posix_spawn, no shell,
// capturing stdout and stderr, with a time limit; optionally with stdout on a
// pseudo-terminal. Header-only (tests include it directly).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace signround::cli::testing {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed; -1 when it could not start
  std::string out;
  std::string err;
  double seconds = 0;
  bool timed_out = false;
};

struct ProcessOptions {
  // NAME=value entries added to (or replacing in) the environment.
  std::vector<std::string> env;
  // Environment variables removed (before `env` is applied).
  std::vector<std::string> unset;
  double time_limit_s = 60;
  bool stdout_tty = false;  // stdout (not stderr) on a pseudo-terminal of 200 columns
};

namespace internal {

inline std::vector<std::string> Environment(const ProcessOptions& o) {
  std::vector<std::string> out;
  auto dropped = [&o](const std::string& entry) {
    std::string name = entry.substr(0, entry.find('='));
    for (const std::string& u : o.unset)
      if (u == name) return true;
    for (const std::string& e : o.env)
      if (e.substr(0, e.find('=')) == name) return true;
    return false;
  };
  for (char** e = environ; *e != nullptr; ++e) {
    if (!dropped(*e)) out.push_back(*e);
  }
  out.insert(out.end(), o.env.begin(), o.env.end());
  return out;
}

// Reads `out_fd` and `err_fd` until both are at EOF; false when the deadline
// passed first.
inline bool Drain(int out_fd, int err_fd, std::string* out, std::string* err,
                  std::chrono::steady_clock::time_point deadline) {
  struct pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* into[2] = {out, err};
  while (p[0].fd >= 0 || p[1].fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int n = ::poll(p, 2, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char buf[4096];
      ssize_t got = ::read(p[i].fd, buf, sizeof(buf));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        p[i].fd = -1;  // EOF (EIO on a pty whose other side closed)
        continue;
      }
      into[i]->append(buf, static_cast<size_t>(got));
    }
  }
  return true;
}

// A pseudo-terminal pair; the caller closes both descriptors.
inline bool OpenPty(int* master, int* slave) {
  *master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*master < 0 || ::grantpt(*master) != 0 || ::unlockpt(*master) != 0) return false;
  const char* name = ::ptsname(*master);
  if (name == nullptr) return false;
  *slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  struct winsize ws = {};
  ws.ws_row = 50;
  ws.ws_col = 200;
  return *slave >= 0 && ::ioctl(*slave, TIOCSWINSZ, &ws) == 0;
}

}  // namespace internal

inline ProcessResult RunProcess(const std::string& binary, const std::vector<std::string>& args,
                                const ProcessOptions& options = {}) {
  ProcessResult r;
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return r;
  bool ok = options.stdout_tty ? internal::OpenPty(&out_pipe[0], &out_pipe[1])
                               : ::pipe2(out_pipe, O_CLOEXEC) == 0;
  if (!ok) return r;
  std::vector<std::string> argv_s = {binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s = internal::Environment(options);
  std::vector<char*> argv, envp;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc == 0) {
    auto deadline =
        start + std::chrono::milliseconds(static_cast<int64_t>(options.time_limit_s * 1000));
    r.timed_out = !internal::Drain(out_pipe[0], err_pipe[0], &r.out, &r.err, deadline);
    if (r.timed_out) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  return r;
}

}  // namespace signround::cli::testing
