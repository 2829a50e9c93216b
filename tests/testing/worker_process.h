// Runs the real signround-worker binary (SIGNROUND_WORKER_BIN, defined by the
// test target) with fork + execv, no shell: stdout on a pipe, stderr in a file.
// Header-only because the binary's path is a per-target definition.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/spawn.h"
#include "tests/testing/test_files.h"

namespace signround::testing {

inline std::string ReadAll(const std::string& path) { return ReadFileOrEmpty(path); }

// A worker process with stdout on a pipe and stderr in a file.
class Worker {
 public:
  // `env`, when given, replaces the whole environment ("NAME=value" entries).
  Worker(const std::vector<std::string>& args, const std::string& err_path,
         const std::vector<std::string>* env = nullptr) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    std::vector<std::string> argv_s = {SIGNROUND_WORKER_BIN};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s = env ? *env : std::vector<std::string>();
    std::vector<char*> envp;
    for (std::string& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[1]);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) ::dup2(err, STDERR_FILENO);
      if (env) {
        ::execve(argv[0], argv.data(), envp.data());
      } else {
        ::execv(argv[0], argv.data());
      }
      ::_exit(127);
    }
    ::close(fds[1]);
    out_fd_ = fds[0];
  }
  ~Worker() {
    if (out_fd_ >= 0) ::close(out_fd_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  pid_t pid() const { return pid_; }

  // The next line of stdout without its newline; false at end of file.
  bool ReadLine(std::string& line) {
    while (true) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      char chunk[4096];
      ssize_t n = ::read(out_fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (buf_.empty()) return false;
        line = buf_;
        buf_.clear();
        return true;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Everything left on stdout.
  std::string ReadRest() {
    std::string out, line;
    while (ReadLine(line)) out += line + "\n";
    return out;
  }

  // The raw waitpid status.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool reaped_ = false;
  std::string buf_;
};

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the worker to completion; `env`, when given, is its whole environment.
inline Result RunWorker(const std::vector<std::string>& args,
                        const std::vector<std::string>* env = nullptr) {
  testing::TempDir tmp;
  Result r;
  int status;
  {
    Worker w(args, tmp.File("err"), env);
    r.out = w.ReadRest();
    status = w.Wait();
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = ReadAll(tmp.File("err"));
  return r;
}

inline Result RunWorkerWithEnv(const std::vector<std::string>& args,
                               const std::vector<std::string>& env) {
  return RunWorker(args, &env);
}

// The same with space-separated arguments (no quoting; test paths have no spaces).
inline Result RunWorker(const std::string& args) {
  std::vector<std::string> split;
  std::istringstream in(args);
  for (std::string a; in >> a;) split.push_back(a);
  return RunWorker(split);
}

inline  // A bad-input failure: exit 2, nothing on stdout, exactly one line on stderr.
    void
    ExpectOneLineError(const Result& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("signround-worker: error: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line only: " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "want '" << fragment << "' in " << r.err;
}

}  // namespace signround::testing
