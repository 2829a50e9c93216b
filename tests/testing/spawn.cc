#include "tests/testing/spawn.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace signround::testing {

pid_t SpawnProcess(SpawnOptions options) {
  std::vector<char*> argv_c, env_c;
  for (std::string& a : options.argv) argv_c.push_back(a.data());
  argv_c.push_back(nullptr);
  for (std::string& e : options.env) env_c.push_back(e.data());
  env_c.push_back(nullptr);
  const int mode = O_WRONLY | O_CREAT | O_CLOEXEC | (options.append ? O_APPEND : O_TRUNC);
  int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = ::open(options.stdout_path.c_str(), mode, 0644);
  int err_fd = ::open(options.stderr_path.c_str(), mode, 0644);
  pid_t pid = (in_fd >= 0 && out_fd >= 0 && err_fd >= 0) ? ::fork() : -1;
  if (pid == 0) {
    ::dup2(in_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    }
    ::execve(argv_c[0], argv_c.data(), env_c.data());
    ::_exit(127);
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) ::close(fd);
  }
  return pid;
}

std::optional<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string ReadFileOrEmpty(const std::string& path) { return ReadWholeFile(path).value_or(""); }

}  // namespace signround::testing
