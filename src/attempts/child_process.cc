// One job's engine process: see child_process.h.
#include "src/attempts/child_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace signround::jobs {
namespace {

// After the leader has exited, how long Wait() waits for stdout to reach EOF
// (a process that left the group may hold it open).
constexpr std::chrono::seconds kDrainTimeout{5};
// The most a drain without blocking reads (a runaway writer must not keep it going).
constexpr size_t kMaxDrainBytes = size_t{16} << 20;
constexpr size_t kReadChunk = size_t{64} << 10;

// What the child reports on the error pipe when it cannot exec its program.
enum ChildStage : int { kStageSetup = 1, kStageChdir = 2, kStageExec = 3 };
struct ChildReport {
  int stage = 0;
  int err = 0;
};

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    Reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` (CLOEXEC) to a number >= 3, so that dup2 onto 0..2 in the child
// cannot clobber it even when the server runs with stdin/stdout/stderr closed.
absl::StatusOr<Fd> AboveStdio(int fd, absl::string_view what) {
  Fd owned(fd);
  if (fd < 0) return ErrnoStatus(errno, what);
  if (fd >= 3) return owned;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return ErrnoStatus(errno, what);
  return Fd(moved);
}

bool HasNul(absl::string_view s) { return s.find('\0') != absl::string_view::npos; }

absl::Status ValidateOptions(const ChildOptions& o) {
  if (o.argv.empty()) return absl::InvalidArgumentError("child argv is empty");
  if (o.argv[0].empty() || o.argv[0][0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("child argv[0] must be an absolute path, got '", o.argv[0], "'"));
  }
  for (size_t i = 0; i < o.argv.size(); ++i) {
    if (HasNul(o.argv[i])) {
      return absl::InvalidArgumentError(absl::StrCat("child argv[", i, "] contains a NUL byte"));
    }
  }
  for (const auto& [key, value] : o.env) {
    // Values are not quoted in errors: they may hold credentials.
    if (key.empty() || key.find('=') != std::string::npos || HasNul(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("child environment variable name '", HasNul(key) ? "<NUL>" : key,
                       "' is empty or contains '=' or NUL"));
    }
    if (HasNul(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("child environment variable ", key, " contains a NUL byte"));
    }
  }
  if (HasNul(o.stderr_path)) return absl::InvalidArgumentError("child stderr_path contains NUL");
  if (HasNul(o.cwd)) return absl::InvalidArgumentError("child cwd contains NUL");
  return absl::OkStatus();
}

// Marks every descriptor >= 3 close-on-exec by listing /proc/self/fd with raw
// getdents64 (async-signal-safe: no malloc). False if /proc cannot be read.
bool CloexecFromProc() {
  int dir = static_cast<int>(
      syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return false;
  alignas(8) char buf[4096];
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[].
      unsigned short reclen;
      memcpy(&reclen, buf + off + 16, sizeof(reclen));
      const char* name = buf + off + 19;
      int fd = 0;
      bool number = *name != '\0';
      for (const char* c = name; *c != '\0'; ++c) {
        if (*c < '0' || *c > '9') number = false;
        fd = fd * 10 + (*c - '0');
      }
      if (number && fd >= 3 && fd != dir) fcntl(fd, F_SETFD, FD_CLOEXEC);
      off += reclen;
    }
  }
  close(dir);
  return true;
}

}  // namespace

// Everything the child needs, prepared before fork: between fork and exec only
// async-signal-safe calls are made, so nothing there may allocate.
namespace internal {
struct SpawnPlan {
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  const char* cwd = nullptr;
  Fd stdin_fd, stdout_fd, stderr_fd, report_fd;  // the child's ends, all >= 3, CLOEXEC
  pid_t parent_pid = 0;
  int max_fd = 0;
};
}  // namespace internal

namespace {

[[noreturn]] void Report(int fd, int stage, int err) {
  ChildReport r{stage, err};
  ssize_t ignored = write(fd, &r, sizeof(r));
  (void)ignored;
  _exit(127);
}

// Runs in the forked child; never returns.
[[noreturn]] void RunChild(const char* const* argv, char* const* envp, const char* cwd, int in,
                           int out, int err, int report, pid_t parent_pid, int max_fd) {
  if (setpgid(0, 0) != 0) Report(report, kStageSetup, errno);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) Report(report, kStageSetup, errno);
  if (getppid() != parent_pid) _exit(127);  // the server died before prctl: nobody to report to
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
    Report(report, kStageSetup, errno);
  }
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0 && !CloexecFromProc()) {
    for (int fd = 3; fd < max_fd; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (cwd != nullptr && chdir(cwd) != 0) Report(report, kStageChdir, errno);
  // Ignored signals stay ignored across exec (a server often ignores SIGPIPE),
  // and the forking thread blocks all signals: give the program a clean slate.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(argv[0], const_cast<char* const*>(argv), envp);
  Report(report, kStageExec, errno);
}

absl::Status ReportStatus(const ChildReport& r, const ChildOptions& o) {
  switch (r.stage) {
    case kStageChdir:
      return ErrnoStatus(r.err, absl::StrCat("cannot start '", o.argv[0],
                                             "': cannot change to directory '", o.cwd, "'"));
    case kStageExec:
      return ErrnoStatus(r.err, absl::StrCat("cannot execute '", o.argv[0], "'"));
    default:
      return ErrnoStatus(r.err, absl::StrCat("cannot set up the process for '", o.argv[0], "'"));
  }
}

// Splits a byte stream into lines, cutting over-long ones.
class LineSplitter {
 public:
  explicit LineSplitter(const ChildProcess::LineCallback& on_line) : on_line_(on_line) {}

  void Feed(const char* p, size_t n) {
    while (n > 0) {
      const char* nl = static_cast<const char*>(memchr(p, '\n', n));
      size_t len = nl != nullptr ? static_cast<size_t>(nl - p) : n;
      size_t take = std::min(len, kMaxChildLineBytes - line_.size());
      line_.append(p, take);
      dropped_ += len - take;
      if (nl == nullptr) return;
      Emit();
      p = nl + 1;
      n -= len + 1;
    }
  }
  // Delivers a final line that had no newline.
  void Finish() {
    if (!line_.empty() || dropped_ > 0) Emit();
  }

 private:
  void Emit() {
    if (dropped_ > 0) {
      absl::StrAppend(&line_, " [signround: line cut to ", line_.size(), " of ",
                      line_.size() + dropped_, " bytes]");
    }
    if (on_line_) on_line_(line_);
    line_.clear();
    dropped_ = 0;
  }

  const ChildProcess::LineCallback& on_line_;
  std::string line_;
  uint64_t dropped_ = 0;
};

// A CLOEXEC pipe, both ends >= 3.
absl::Status MakePipe(Fd* read_end, Fd* write_end, absl::string_view what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, what);
  Fd w(fds[1]);
  SR_ASSIGN_OR_RETURN(*read_end, AboveStdio(fds[0], what));
  SR_ASSIGN_OR_RETURN(*write_end, AboveStdio(w.Release(), what));
  return absl::OkStatus();
}

// The plan for `o` (already validated); the parent's ends of the stdout and
// report pipes go to *stdout_read and *report_read.
absl::StatusOr<std::unique_ptr<internal::SpawnPlan>> MakePlan(const ChildOptions& o,
                                                              Fd* stdout_read, Fd* report_read) {
  auto plan = std::make_unique<internal::SpawnPlan>();
  plan->argv_storage = o.argv;
  for (const auto& [key, value] : o.env) plan->env_storage.push_back(key + "=" + value);
  for (auto& s : plan->argv_storage) plan->argv.push_back(s.data());
  plan->argv.push_back(nullptr);
  for (auto& s : plan->env_storage) plan->envp.push_back(s.data());
  plan->envp.push_back(nullptr);
  if (!o.cwd.empty()) plan->cwd = o.cwd.c_str();
  plan->parent_pid = getpid();
  plan->max_fd = static_cast<int>(std::clamp<long>(sysconf(_SC_OPEN_MAX), 1024, 1 << 20));
  SR_ASSIGN_OR_RETURN(plan->stdin_fd,
                      AboveStdio(open("/dev/null", O_RDONLY | O_CLOEXEC), "open /dev/null"));
  const std::string err = o.stderr_path.empty() ? "/dev/null" : o.stderr_path;
  SR_ASSIGN_OR_RETURN(plan->stderr_fd,
                      AboveStdio(open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644),
                                 absl::StrCat("cannot open the child's stderr file '", err, "'")));
  SR_RETURN_IF_ERROR(MakePipe(stdout_read, &plan->stdout_fd, "pipe for the child's stdout"));
  SR_RETURN_IF_ERROR(MakePipe(report_read, &plan->report_fd, "pipe for the child's exec status"));
  return plan;
}

// Reads the child's report: true if it sent one (it failed before exec), false
// on EOF (the exec closed the CLOEXEC pipe).
bool ReadReport(int fd, ChildReport* report) {
  size_t got = 0;
  while (got < sizeof(*report)) {
    ssize_t n = read(fd, reinterpret_cast<char*>(report) + got, sizeof(*report) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return got == sizeof(*report);
}

// Blocks every signal on the calling thread.
void BlockAllSignals() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
}

// `s` as valid UTF-8 (it ends up in proto string fields): invalid bytes become
// '?'; when `cut`, a sequence cut short at the end is dropped instead.
std::string ValidUtf8(absl::string_view s, bool cut) {
  static constexpr uint32_t kMinCodePoint[5] = {0, 0, 0x80, 0x800, 0x10000};
  std::string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3
                                                   : (c >> 3) == 0x1E ? 4 : 0;
    if (len > 1 && i + len > s.size() && cut) break;
    bool ok = len > 0 && i + len <= s.size();
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; ok && k < len; ++k) {
      unsigned char cont = static_cast<unsigned char>(s[i + k]);
      ok = (cont >> 6) == 2;
      cp = (cp << 6) | (cont & 0x3F);
    }
    if (ok && len > 1) {
      ok = cp >= kMinCodePoint[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out.push_back('?');
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string ExitInfo::Describe() const {
  if (exited) return absl::StrCat("exit code ", code);
  if (signal != 0) {
    const char* abbrev = sigabbrev_np(signal);
    if (abbrev == nullptr) return absl::StrCat("killed by signal ", signal);
    return absl::StrCat("killed by signal ", signal, " (SIG", abbrev, ")");
  }
  return "exit status unknown";
}

ChildProcess::ChildProcess(LineCallback on_line) : on_line_(std::move(on_line)) {}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(const ChildOptions& options,
                                                                  LineCallback on_line) {
  SR_RETURN_IF_ERROR(ValidateOptions(options));
  Fd stdout_read, report_read;
  SR_ASSIGN_OR_RETURN(std::unique_ptr<internal::SpawnPlan> plan,
                      MakePlan(options, &stdout_read, &report_read));
  SR_ASSIGN_OR_RETURN(Fd wake, AboveStdio(eventfd(0, EFD_CLOEXEC), "eventfd for a child"));
  std::unique_ptr<ChildProcess> child(new ChildProcess(std::move(on_line)));
  child->out_fd_ = stdout_read.Release();
  child->wake_fd_ = wake.Release();
  // On any error from here on, the destructor kills and reaps the child.
  SR_RETURN_IF_ERROR(child->Launch(plan.get(), options.argv[0]));
  ChildReport report;
  if (ReadReport(report_read.get(), &report)) return ReportStatus(report, options);
  return child;
}

absl::Status ChildProcess::Launch(internal::SpawnPlan* plan, const std::string& program) {
  try {
    waiter_ = std::thread(&ChildProcess::WaiterMain, this, plan);
  } catch (const std::system_error& e) {
    reaped_ = lines_done_ = true;  // no thread runs
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return forked_; });  // from here on the waiter leaves the plan alone
  if (pid_ < 0) {
    lines_done_ = true;
    return ErrnoStatus(fork_errno_, absl::StrCat("cannot fork for '", program, "'"));
  }
  try {
    reader_ = std::thread(&ChildProcess::ReaderMain, this);
  } catch (const std::system_error& e) {
    lines_done_ = true;
    return absl::ResourceExhaustedError(absl::StrCat("cannot start a thread: ", e.what()));
  }
  return absl::OkStatus();
}

void ChildProcess::WaiterMain(internal::SpawnPlan* plan) {
  // No signal handler of the server runs on this thread, before or after fork.
  BlockAllSignals();
  pid_t pid = fork();
  if (pid == 0) {
    RunChild(plan->argv.data(), plan->envp.data(), plan->cwd, plan->stdin_fd.get(),
             plan->stdout_fd.get(), plan->stderr_fd.get(), plan->report_fd.get(),
             plan->parent_pid, plan->max_fd);
  }
  int fork_errno = errno;
  if (pid > 0) setpgid(pid, pid);  // also done by the child; whichever runs first wins
  // The parent's copies of the child's ends: closed so that EOFs arrive. Start
  // does not touch the plan until forked_ is set.
  plan->stdin_fd.Reset();
  plan->stdout_fd.Reset();
  plan->stderr_fd.Reset();
  plan->report_fd.Reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    forked_ = true;
    pid_ = pid;
    fork_errno_ = fork_errno;
    if (pid < 0) reaped_ = true;
  }
  cv_.notify_all();
  if (pid < 0) return;
  ReapChild();
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, kDrainTimeout, [&] { return lines_done_; })) {
    lock.unlock();
    StopReader();
  }
}

void ChildProcess::ReapChild() {
  // Wait for the exit without reaping: until we reap, the pid (and so the
  // process group id) cannot be reused, so signalling the group stays safe.
  siginfo_t info;
  int rc;
  do {
    memset(&info, 0, sizeof(info));
    rc = waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT);
  } while (rc != 0 && errno == EINTR);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (rc == 0) {
      kill(-pid_, SIGKILL);  // whatever the child left behind in its group
      int status = 0;
      pid_t r;
      do {
        r = waitpid(pid_, &status, 0);
      } while (r < 0 && errno == EINTR);
      if (r == pid_ && WIFEXITED(status)) {
        exit_.exited = true;
        exit_.code = WEXITSTATUS(status);
      } else if (r == pid_ && WIFSIGNALED(status)) {
        exit_.signal = WTERMSIG(status);
      }
    }
    // rc != 0 (ECHILD): someone else reaped it; the status is unknown.
    reaped_ = true;
  }
  cv_.notify_all();
}

void ChildProcess::ReaderMain() {
  LineSplitter splitter(on_line_);
  std::vector<char> buf(kReadChunk);
  bool drain = false;
  for (;;) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int r = poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN) != 0) {
      drain = true;
      break;
    }
    ssize_t n = read(out_fd_, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    splitter.Feed(buf.data(), static_cast<size_t>(n));
  }
  if (drain) {
    // Told to stop: take what is already in the pipe, without waiting for more.
    fcntl(out_fd_, F_SETFL, fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
    for (size_t total = 0; total < kMaxDrainBytes;) {
      ssize_t n = read(out_fd_, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      splitter.Feed(buf.data(), static_cast<size_t>(n));
      total += static_cast<size_t>(n);
    }
  }
  splitter.Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    lines_done_ = true;
  }
  cv_.notify_all();
}

void ChildProcess::StopReader() {
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

ExitInfo ChildProcess::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return reaped_ && lines_done_; });
  return exit_;
}

void ChildProcess::Terminate(std::chrono::milliseconds grace) {
  std::unique_lock<std::mutex> lock(mu_);
  if (reaped_) return;
  kill(-pid_, SIGTERM);  // the leader is unreaped: the group id is still ours
  if (cv_.wait_for(lock, grace, [&] { return reaped_; })) return;
  kill(-pid_, SIGKILL);
  cv_.wait(lock, [&] { return reaped_; });
}

bool ChildProcess::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !reaped_;
}

ChildProcess::~ChildProcess() {
  if (waiter_.joinable()) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!reaped_) kill(-pid_, SIGKILL);
      cv_.wait(lock, [&] { return reaped_; });
    }
    StopReader();
    waiter_.join();
  }
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

std::string LastLineOfFile(const std::string& path, size_t max_bytes) {
  constexpr size_t kWindow = size_t{64} << 10;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  Fd owned(fd);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return "";
  size_t size = static_cast<size_t>(st.st_size);
  size_t want = std::min(size, kWindow);
  std::string tail(want, '\0');
  ssize_t n = pread(fd, tail.data(), want, static_cast<off_t>(size - want));
  if (n <= 0) return "";
  tail.resize(static_cast<size_t>(n));
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
                                   c == '\f'; };
  size_t end = tail.size();
  while (end > 0 && blank(tail[end - 1])) --end;
  if (end == 0) return "";
  size_t start = tail.rfind('\n', end - 1);
  start = start == std::string::npos ? 0 : start + 1;
  size_t len = std::min(end - start, max_bytes);
  return ValidUtf8(absl::string_view(tail).substr(start, len), len < end - start);
}

}  // namespace signround::jobs
