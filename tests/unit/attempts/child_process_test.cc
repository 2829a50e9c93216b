// ChildProcess with ordinary programs (/bin/sh, /bin/sleep, /usr/bin/env, ...)
// as children: stdout lines, environment, stderr file, exit status, signals,
// Terminate, process groups, PR_SET_PDEATHSIG and descriptor hygiene.
#include "src/attempts/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_files.h"

namespace signround::jobs {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::map<std::string, std::string> kPathEnv = {{"PATH", "/usr/bin:/bin"}};

// Collects the lines a child prints; lets the test wait for them.
class Lines {
 public:
  ChildProcess::LineCallback Callback() {
    return [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(line);
      cv_.notify_all();
    };
  }
  // Waits until at least `n` lines arrived (false after `timeout`).
  bool WaitForCount(size_t n, milliseconds timeout = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return lines_.size() >= n; });
  }
  std::vector<std::string> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
};

ChildOptions Opts(std::vector<std::string> argv,
                  std::map<std::string, std::string> env = kPathEnv) {
  ChildOptions o;
  o.argv = std::move(argv);
  o.env = std::move(env);
  return o;
}

ChildOptions Shell(const std::string& script) { return Opts({"/bin/sh", "-c", script}); }

std::unique_ptr<ChildProcess> MustStart(const ChildOptions& o, Lines* lines) {
  auto child = ChildProcess::Start(o, lines->Callback());
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? std::move(child).value() : nullptr;
}

// True when `pid` no longer runs: no such process, or a zombie nobody reaped yet
// (orphans go to an init that may reap slowly).
bool PidGone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return true;
  char state = text[paren + 2];
  return state == 'Z' || state == 'X';
}

bool Eventually(const std::function<bool()>& ok, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (ok()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return ok();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int CountOpenFds() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) n += fcntl(fd, F_GETFD) != -1 ? 1 : 0;
  return n;
}

TEST(ChildProcessTest, DeliversLinesInOrderIncludingLastWithoutNewline) {
  Lines lines;
  auto child = MustStart(Opts({"/usr/bin/printf", "a\\nb\\n\\nc"}), &lines);
  ASSERT_NE(child, nullptr);
  ExitInfo exit = child->Wait();
  EXPECT_TRUE(exit.success()) << exit.Describe();
  EXPECT_EQ(exit.Describe(), "exit code 0");
  EXPECT_THAT(lines.Get(), ElementsAre("a", "b", "", "c"));
}

TEST(ChildProcessTest, ManyLinesArriveInOrder) {
  Lines lines;
  auto child = MustStart(Opts({"/usr/bin/seq", "1", "50000"}), &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(child->Wait().success());
  std::vector<std::string> expected;
  for (int i = 1; i <= 50000; ++i) expected.push_back(std::to_string(i));
  EXPECT_EQ(lines.Get(), expected);
}

TEST(ChildProcessTest, CutsLinesLongerThanOneMebibyte) {
  Lines lines;
  // A 3 MiB line, an exactly 1 MiB line (kept whole), a short one, a 3 MiB last line without '\n'.
  auto child = MustStart(Shell("head -c 3145728 /dev/zero | tr '\\0' a; echo;"
                               "head -c 1048576 /dev/zero | tr '\\0' b; echo; echo after;"
                               "head -c 3145728 /dev/zero | tr '\\0' c"),
                         &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(child->Wait().success());
  std::vector<std::string> got = lines.Get();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], std::string(kMaxChildLineBytes, 'a') +
                        " [signround: line cut to 1048576 of 3145728 bytes]");
  EXPECT_EQ(got[1], std::string(kMaxChildLineBytes, 'b'));
  EXPECT_EQ(got[2], "after");
  EXPECT_EQ(got[3], std::string(kMaxChildLineBytes, 'c') +
                        " [signround: line cut to 1048576 of 3145728 bytes]");
}

TEST(ChildProcessTest, EnvironmentIsExactlyTheGivenOne) {
  ASSERT_EQ(setenv("SIGNROUND_CHILD_TEST_PARENT_ONLY", "1", 1), 0);
  Lines lines;
  auto child = MustStart(Opts({"/usr/bin/env"}, {{"A", "1"}, {"B", "x y"}, {"EMPTY", ""}}),
                         &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(child->Wait().success());
  std::vector<std::string> got = lines.Get();
  std::sort(got.begin(), got.end());
  EXPECT_THAT(got, ElementsAre("A=1", "B=x y", "EMPTY="));

  Lines none;
  auto empty = MustStart(Opts({"/usr/bin/env"}, {}), &none);
  ASSERT_NE(empty, nullptr);
  ASSERT_TRUE(empty->Wait().success());
  EXPECT_THAT(none.Get(), IsEmpty());
  unsetenv("SIGNROUND_CHILD_TEST_PARENT_ONLY");
}

TEST(ChildProcessTest, StderrGoesToTheFileAndExitCodeIsReported) {
  testing::TempDir dir;
  std::string err = dir.File("child.stderr");
  testing::WriteFile(err, "stale content from an earlier attempt\n");
  ChildOptions o = Shell("echo first >&2; echo out; echo 'the error' >&2; exit 3");
  o.stderr_path = err;
  Lines lines;
  auto child = MustStart(o, &lines);
  ASSERT_NE(child, nullptr);
  ExitInfo exit = child->Wait();
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.code, 3);
  EXPECT_FALSE(exit.success());
  EXPECT_EQ(exit.Describe(), "exit code 3");
  EXPECT_THAT(lines.Get(), ElementsAre("out"));
  EXPECT_EQ(ReadAll(err), "first\nthe error\n");
  EXPECT_EQ(LastLineOfFile(err), "the error");
}

TEST(ChildProcessTest, StdinIsDevNullAndCwdIsUsed) {
  testing::TempDir dir;
  char* real = realpath(dir.path().c_str(), nullptr);
  ASSERT_NE(real, nullptr);
  std::string real_dir = real;
  free(real);
  ChildOptions o = Shell("readlink /proc/self/fd/0; pwd -P");
  o.cwd = dir.path();
  Lines lines;
  auto child = MustStart(o, &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(child->Wait().success());
  EXPECT_THAT(lines.Get(), ElementsAre("/dev/null", real_dir));
}

TEST(ChildProcessTest, ReportsDeathBySignal) {
  Lines lines;
  auto child = MustStart(Shell("kill -9 $$"), &lines);
  ASSERT_NE(child, nullptr);
  ExitInfo exit = child->Wait();
  EXPECT_FALSE(exit.exited);
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_EQ(exit.Describe(), "killed by signal 9 (SIGKILL)");
  EXPECT_FALSE(exit.success());
}

TEST(ChildProcessTest, StartFailsClearlyWhenTheProgramCannotRun) {
  Lines lines;
  auto missing = ChildProcess::Start(Opts({"/no/such/signround-worker"}), lines.Callback());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("/no/such/signround-worker"));
  EXPECT_THAT(missing.status().message(), HasSubstr("cannot execute"));

  testing::TempDir dir;
  std::string script = dir.File("not-executable");
  testing::WriteFile(script, "#!/bin/sh\necho hi\n");
  ASSERT_EQ(chmod(script.c_str(), 0644), 0);
  auto denied = ChildProcess::Start(Opts({script}), lines.Callback());
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.status().message(), HasSubstr(script));

  ChildOptions bad_cwd = Opts({"/bin/true"});
  bad_cwd.cwd = dir.File("no-such-dir");
  auto cwd = ChildProcess::Start(bad_cwd, lines.Callback());
  ASSERT_FALSE(cwd.ok());
  EXPECT_EQ(cwd.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(cwd.status().message(), HasSubstr(bad_cwd.cwd));

  ChildOptions bad_err = Opts({"/bin/true"});
  bad_err.stderr_path = dir.File("no-such-dir/stderr");
  auto err = ChildProcess::Start(bad_err, lines.Callback());
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(err.status().message(), HasSubstr(bad_err.stderr_path));
  EXPECT_THAT(lines.Get(), IsEmpty());
}

TEST(ChildProcessTest, RejectsMalformedOptionsWithoutLeakingValues) {
  struct Case {
    ChildOptions options;
    std::string names;
  };
  std::vector<Case> cases = {
      {Opts({}), "argv"},
      {Opts({"sh", "-c", "true"}), "argv[0]"},
      {Opts({""}), "argv[0]"},
      {Opts({"/bin/echo", std::string("a\0b", 3)}), "argv[1]"},
      {Opts({"/bin/true"}, {{"A=B", "1"}}), "A=B"},
      {Opts({"/bin/true"}, {{"", "1"}}), "environment"},
      {Opts({"/bin/true"}, {{"TOKEN", std::string("sec\0ret", 7)}}), "TOKEN"},
  };
  for (const Case& c : cases) {
    Lines lines;
    auto child = ChildProcess::Start(c.options, lines.Callback());
    ASSERT_FALSE(child.ok()) << c.names;
    EXPECT_EQ(child.status().code(), absl::StatusCode::kInvalidArgument) << child.status();
    EXPECT_THAT(child.status().message(), HasSubstr(c.names));
    EXPECT_THAT(child.status().message(), ::testing::Not(HasSubstr("sec")));
  }
}

TEST(ChildProcessTest, TerminateKillsAChildThatIgnoresSigterm) {
  Lines lines;
  auto child = MustStart(Shell("trap '' TERM; echo ready; sleep 30"), &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(lines.WaitForCount(1));  // the trap is in place
  const milliseconds grace(300);
  auto t0 = Clock::now();
  child->Terminate(grace);
  auto elapsed = Clock::now() - t0;
  EXPECT_GE(elapsed, grace);
  EXPECT_LT(elapsed, grace + milliseconds(1000));
  EXPECT_FALSE(child->running());
  ExitInfo exit = child->Wait();
  EXPECT_EQ(exit.signal, SIGKILL) << exit.Describe();
}

TEST(ChildProcessTest, TerminateEndsACooperativeChildFast) {
  Lines lines;
  auto child = MustStart(Opts({"/bin/sleep", "30"}), &lines);
  ASSERT_NE(child, nullptr);
  EXPECT_TRUE(child->running());
  auto t0 = Clock::now();
  child->Terminate(milliseconds(10000));
  EXPECT_LT(Clock::now() - t0, milliseconds(1000));
  ExitInfo exit = child->Wait();
  EXPECT_EQ(exit.signal, SIGTERM) << exit.Describe();
  EXPECT_EQ(exit.Describe(), "killed by signal 15 (SIGTERM)");
}

TEST(ChildProcessTest, TerminateKillsGrandchildrenInTheGroup) {
  Lines lines;
  // On SIGTERM the shell waits for its sleep and exits 9: that is fast only if
  // the sleep got the SIGTERM too (else the shell is SIGKILLed after the grace).
  auto child = MustStart(Shell("trap 'wait; exit 9' TERM; sleep 30 & echo $!; wait"), &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(lines.WaitForCount(1));
  pid_t grandchild = std::stoi(lines.Get()[0]);
  // Until the forked subshell has exec'd sleep, a SIGTERM may be swallowed by the shell's trap.
  ASSERT_TRUE(Eventually([&] { return ReadAll(absl::StrCat("/proc/", grandchild, "/comm")) ==
                                      "sleep\n"; },
                         milliseconds(5000)));
  auto t0 = Clock::now();
  child->Terminate(milliseconds(3000));
  EXPECT_LT(Clock::now() - t0, milliseconds(1000));
  EXPECT_EQ(child->Wait().Describe(), "exit code 9");
  EXPECT_TRUE(Eventually([&] { return PidGone(grandchild); }, milliseconds(2000)));
}

TEST(ChildProcessTest, LeftoversInTheGroupDieWhenTheChildExits) {
  // The background sleep holds stdout open; Wait must not wait for it.
  Lines lines;
  auto child = MustStart(Shell("sleep 30 & echo $!; exit 5"), &lines);
  ASSERT_NE(child, nullptr);
  auto t0 = Clock::now();
  ExitInfo exit = child->Wait();
  EXPECT_LT(Clock::now() - t0, milliseconds(2000));
  EXPECT_EQ(exit.Describe(), "exit code 5");
  ASSERT_EQ(lines.Get().size(), 1u);
  pid_t grandchild = std::stoi(lines.Get()[0]);
  EXPECT_TRUE(Eventually([&] { return PidGone(grandchild); }, milliseconds(2000)));
}

TEST(ChildProcessTest, ChildDiesWithTheServer) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t server = fork();
  ASSERT_GE(server, 0);
  if (server == 0) {  // plays the server: starts `sleep 30`, reports its pid, waits to be killed
    close(fds[0]);
    Lines lines;
    auto child = ChildProcess::Start(Opts({"/bin/sleep", "30"}), lines.Callback());
    if (!child.ok()) _exit(1);
    pid_t pid = (*child)->pid();
    if (write(fds[1], &pid, sizeof(pid)) != sizeof(pid)) _exit(1);
    for (;;) pause();
  }
  close(fds[1]);
  pid_t sleeper = 0;
  ASSERT_EQ(read(fds[0], &sleeper, sizeof(sleeper)), static_cast<ssize_t>(sizeof(sleeper)));
  close(fds[0]);
  ASSERT_GT(sleeper, 0);
  EXPECT_FALSE(PidGone(sleeper));
  ASSERT_EQ(kill(server, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(server, &status, 0), server);
  EXPECT_TRUE(Eventually([&] { return PidGone(sleeper); }, milliseconds(2000)));
}

TEST(ChildProcessTest, OtherDescriptorsAreNotInherited) {
  testing::TempDir dir;
  std::string file = dir.File("open-in-parent");
  testing::WriteFile(file, "x");
  int fd = open(file.c_str(), O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 0);
  int high = fcntl(fd, F_DUPFD, 50);  // also without FD_CLOEXEC
  ASSERT_GE(high, 50);
  Lines lines;
  // ls opens the directory it lists: that is the one descriptor beyond 0..2.
  auto child = MustStart(Opts({"/bin/ls", "/proc/self/fd"}), &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(child->Wait().success());
  close(fd);
  close(high);
  std::vector<std::string> listed = lines.Get();
  std::set<std::string> got(listed.begin(), listed.end());
  EXPECT_TRUE(got.count("0") && got.count("1") && got.count("2"));
  for (const std::string& name : listed) EXPECT_LE(std::stoi(name), 3) << name;
  EXPECT_EQ(got.count(std::to_string(high)), 0u);
}

TEST(ChildProcessTest, StartingManyChildrenLeaksNoDescriptors) {
  int before = CountOpenFds();
  for (int i = 0; i < 30; ++i) {
    Lines lines;
    auto child = MustStart(Opts({"/bin/echo", std::to_string(i)}), &lines);
    ASSERT_NE(child, nullptr);
    ASSERT_TRUE(child->Wait().success());
    EXPECT_THAT(lines.Get(), ElementsAre(std::to_string(i)));
    auto failed = ChildProcess::Start(Opts({"/no/such/program"}), lines.Callback());
    EXPECT_FALSE(failed.ok());
  }
  EXPECT_EQ(CountOpenFds(), before);
}

TEST(ChildProcessTest, ConcurrentWaitAndTerminate) {
  Lines lines;
  auto child = MustStart(Opts({"/bin/sleep", "30"}), &lines);
  ASSERT_NE(child, nullptr);
  ExitInfo waited, waited_again;
  std::thread waiter([&] { waited = child->Wait(); });
  std::thread waiter2([&] { waited_again = child->Wait(); });
  std::thread terminator([&] { child->Terminate(milliseconds(5000)); });
  std::this_thread::sleep_for(milliseconds(50));
  child->Terminate(milliseconds(5000));  // a second, overlapping Terminate
  terminator.join();
  waiter.join();
  waiter2.join();
  EXPECT_EQ(waited.signal, SIGTERM) << waited.Describe();
  EXPECT_EQ(waited_again.Describe(), waited.Describe());
  EXPECT_FALSE(child->running());
}

TEST(ChildProcessTest, WaitIsIdempotentAndTerminateAfterExitIsANoOp) {
  Lines lines;
  auto child = MustStart(Shell("exit 7"), &lines);
  ASSERT_NE(child, nullptr);
  ExitInfo first = child->Wait();
  EXPECT_EQ(first.code, 7);
  auto t0 = Clock::now();
  child->Terminate(milliseconds(5000));
  EXPECT_LT(Clock::now() - t0, milliseconds(100));
  ExitInfo second = child->Wait();
  EXPECT_EQ(second.Describe(), "exit code 7");
  EXPECT_FALSE(child->running());
}

TEST(ChildProcessTest, ChildClosingStdoutEarlyIsStillWaitedFor) {
  Lines lines;
  auto child = MustStart(Shell("echo bye; exec >&-; sleep 0.3; exit 4"), &lines);
  ASSERT_NE(child, nullptr);
  auto t0 = Clock::now();
  ExitInfo exit = child->Wait();
  EXPECT_GE(Clock::now() - t0, milliseconds(250));
  EXPECT_EQ(exit.code, 4);
  EXPECT_THAT(lines.Get(), ElementsAre("bye"));
}

TEST(ChildProcessTest, DestructorKillsARunningChild) {
  Lines lines;
  auto child = MustStart(Shell("trap '' TERM; echo ready; sleep 30"), &lines);
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(lines.WaitForCount(1));
  pid_t pid = child->pid();
  auto t0 = Clock::now();
  child.reset();
  EXPECT_LT(Clock::now() - t0, milliseconds(1000));
  // Reaped by the destructor, so really gone (not a zombie).
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(LastLineOfFileTest, FindsTheLastNonBlankLine) {
  testing::TempDir dir;
  std::string f = dir.File("log");
  EXPECT_EQ(LastLineOfFile(f), "");  // missing
  testing::WriteFile(f, "");
  EXPECT_EQ(LastLineOfFile(f), "");
  testing::WriteFile(f, "first\nError: out of memory  \r\n\n   \n");
  EXPECT_EQ(LastLineOfFile(f), "Error: out of memory");
  testing::WriteFile(f, "a\nno newline at end");
  EXPECT_EQ(LastLineOfFile(f), "no newline at end");
  EXPECT_EQ(LastLineOfFile(dir.path()), "");  // a directory
}

TEST(LastLineOfFileTest, CutsLongLinesAndKeepsUtf8Valid) {
  testing::TempDir dir;
  std::string f = dir.File("log");
  testing::WriteFile(f, "x\n" + std::string(10000, 'y') + "\n");
  EXPECT_EQ(LastLineOfFile(f, 100), std::string(100, 'y'));
  testing::WriteFile(f, "bad \xff\xfe bytes \xc3\n");
  EXPECT_EQ(LastLineOfFile(f), "bad ?? bytes ?");
  // "é" is 2 bytes: a cut after 5 bytes keeps two of them whole and drops the half.
  testing::WriteFile(f, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\n");
  EXPECT_EQ(LastLineOfFile(f, 5), "\xc3\xa9\xc3\xa9");
  // An overlong encoding of '/' and a UTF-16 surrogate are not valid UTF-8.
  testing::WriteFile(f, "\xc0\xaf \xed\xa0\x80\n");
  EXPECT_EQ(LastLineOfFile(f), "?? ???");
  // Only the file's tail is read: a huge file costs no more than a small one.
  testing::WriteFile(f, std::string(1 << 20, 'z') + "\nthe end\n");
  EXPECT_EQ(LastLineOfFile(f), "the end");
}

}  // namespace
}  // namespace signround::jobs
