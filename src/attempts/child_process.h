// One job's engine process (`signround-worker quantize ... --progress json`) as
// seen by the server: started with fork + execve (no shell) in its own process
// group, with a clean environment, stdin on /dev/null, stderr into a file and
// stdout split into lines for the caller; stopped with SIGTERM then SIGKILL to
// the whole group; killed by the kernel (PR_SET_PDEATHSIG) if the server dies.
//
// Threads: each ChildProcess owns two threads. The "waiter" forks the child
// (so the child's parent thread lives exactly as long as the child, which
// PR_SET_PDEATHSIG needs: it fires when the forking *thread* ends), waits for
// it to exit, kills whatever is left of its process group and reaps it. The
// "reader" reads stdout and calls on_line. Only the waiter reaps, and signals
// go to the group only under the mutex while the leader is known unreaped, so
// a recycled pid is never signalled.
//
// The server must not reap children it does not own (no waitpid(-1), no
// SIGCHLD set to SIG_IGN); if it does, the exit status is reported as unknown.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace signround::jobs {

namespace internal {
struct SpawnPlan;  // what the forked child needs, prepared before fork (child_process.cc)
}  // namespace internal

// A stdout line longer than this is cut to this many bytes and a note is
// appended (" [signround: line cut to N of M bytes]").
inline constexpr size_t kMaxChildLineBytes = size_t{1} << 20;

struct ChildOptions {
  std::vector<std::string> argv;           // argv[0] is an absolute path to the executable
  std::map<std::string, std::string> env;  // the child's whole environment (nothing inherited)
  std::string stderr_path;                 // the child's stderr goes here (created/truncated);
                                           // empty: /dev/null
  std::string cwd;                         // empty: inherit
};

struct ExitInfo {
  bool exited = false;  // normal exit, with `code`
  int code = 0;
  int signal = 0;       // killed by this signal
  // "exit code 2", "killed by signal 9 (SIGKILL)", "exit status unknown".
  std::string Describe() const;
  bool success() const { return exited && code == 0; }
};

class ChildProcess {
 public:
  using LineCallback = std::function<void(const std::string&)>;

  // Starts the child (see the top of this file). on_line is called for each
  // stdout line (without '\n'; a final line without newline too), in order, on
  // the reader thread; it must not throw and must not call Wait() or the
  // destructor. Errors: INVALID_ARGUMENT for bad options (naming the field),
  // NOT_FOUND / PERMISSION_DENIED / INTERNAL when the stderr file, cwd or
  // executable cannot be used (the child never ran its program).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const ChildOptions& options,
                                                             LineCallback on_line);
  // Kills the group with SIGKILL if the child is still running, reaps it and
  // joins both threads (pending stdout is read without blocking, then dropped).
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Blocks until the child has exited AND every stdout line has been
  // delivered; idempotent, callable from several threads. If a process that
  // left the group still holds stdout open, lines are awaited for at most 5 s
  // after the child exits.
  ExitInfo Wait();

  // SIGTERM to the process group, then SIGKILL to the group if the child has
  // not exited after `grace`; returns once the child is reaped. Safe from any
  // thread, concurrently with Wait(), more than once, and after exit (no-op).
  void Terminate(std::chrono::milliseconds grace);

  // True until the child has exited and been reaped.
  bool running() const;

 private:
  explicit ChildProcess(LineCallback on_line);
  // Starts the waiter (which forks) and, once the child exists, the reader.
  absl::Status Launch(internal::SpawnPlan* plan, const std::string& program);
  void WaiterMain(internal::SpawnPlan* plan);
  void ReapChild();
  void ReaderMain();
  void StopReader();

  LineCallback on_line_;
  int out_fd_ = -1;   // read end of the child's stdout
  int wake_fd_ = -1;  // eventfd: tells the reader to drain without blocking and stop
  std::thread waiter_;
  std::thread reader_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool forked_ = false;      // the waiter has tried fork()
  int fork_errno_ = 0;
  pid_t pid_ = -1;           // written once before Start returns
  bool reaped_ = false;      // the child has been reaped (or never started)
  bool lines_done_ = false;  // the reader has delivered its last line
  ExitInfo exit_;
};

// The last non-blank line of a file (trailing whitespace removed), cut to at
// most max_bytes and made valid UTF-8 (invalid bytes become '?'); only the
// last 64 KiB of the file are read. Empty if the file is missing or has none.
std::string LastLineOfFile(const std::string& path, size_t max_bytes = 4096);

}  // namespace signround::jobs
