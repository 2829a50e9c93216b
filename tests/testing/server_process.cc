#include "tests/testing/server_process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/testing/spawn.h"

extern char** environ;

namespace signround::testing {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// Reaps `pid` if it has ended within `timeout_seconds`; its wait status, or
// nullopt while it still runs.
std::optional<int> WaitFor(pid_t pid, double timeout_seconds) {
  const Clock::time_point t0 = Clock::now();
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;  // not our child any more
    if (SecondsSince(t0) >= timeout_seconds) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string TailLines(const std::string& text, int lines) {
  std::deque<std::string> tail;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& line : tail) absl::StrAppend(&out, line, "\n");
  return out;
}

// The parent pid and state letter from /proc/PID/stat.
bool ReadProcStat(pid_t pid, pid_t* ppid, char* state) {
  std::string stat = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 4 > stat.size()) return false;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  if (fields.size() < 2 || fields[0].empty()) return false;
  *state = fields[0][0];
  int parent = 0;
  if (!absl::SimpleAtoi(fields[1], &parent)) return false;
  *ppid = parent;
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const ServerProcessOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data_dir is required");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", options.data_dir));

  std::unique_ptr<ServerProcess> server(new ServerProcess());
  // Beside the data dir, not in it: the server owns what is inside. Appended
  // across restarts so the tail covers every run on this data dir.
  server->log_path_ = options.data_dir + ".server.log";
  const std::string stdout_path = options.data_dir + ".server.stdout";

  SpawnOptions spawn;
  spawn.argv = {SIGNROUND_SERVER_BIN, "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
                "--data-dir=" + options.data_dir, "--worker-bin=" SIGNROUND_WORKER_BIN};
  spawn.argv.insert(spawn.argv.end(), options.extra_args.begin(), options.extra_args.end());
  for (const char* name : {"PATH", "HOME", "TMPDIR"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && options.env.count(name) == 0) {
      spawn.env.push_back(absl::StrCat(name, "=", value));
    }
  }
  for (const auto& [name, value] : options.env) spawn.env.push_back(name + "=" + value);
  spawn.stdout_path = stdout_path;
  spawn.stderr_path = server->log_path_;
  spawn.append = true;
  {
    std::ofstream truncate(stdout_path, std::ios::trunc);  // a restart's fresh ready line
  }
  server->pid_ = SpawnProcess(spawn);
  if (server->pid_ < 0) return absl::InternalError(absl::StrCat("cannot fork: errno ", errno));

  const Clock::time_point t0 = Clock::now();
  while (true) {
    const std::string out = ReadFileOrEmpty(stdout_path);
    const size_t nl = out.find('\n');
    if (nl != std::string::npos) {
      nlohmann::json ready = nlohmann::json::parse(out.substr(0, nl), nullptr, false);
      // A --role=worker server has no gRPC address ("grpc": null).
      const bool grpc = ready.is_object() && ready.contains("grpc") &&
                        (ready["grpc"].is_null() ||
                         (ready["grpc"].is_string() && !ready["grpc"].get<std::string>().empty()));
      if (grpc && ready.value("metrics", "") != "") {
        if (ready["grpc"].is_string()) server->grpc_address_ = ready["grpc"].get<std::string>();
        server->metrics_address_ = ready["metrics"].get<std::string>();
        server->tls_ = ready.value("tls", nlohmann::json(false)) == nlohmann::json(true);
        return server;
      }
      return absl::InternalError(
          absl::StrCat("bad ready line '", out.substr(0, nl), "'; log:\n", server->LogTail()));
    }
    if (std::optional<int> status = WaitFor(server->pid_, 0)) {
      server->pid_ = -1;
      return absl::InternalError(absl::StrCat("signround-server ended before ready (",
                                              DescribeWaitStatus(*status), "); log:\n",
                                              server->LogTail()));
    }
    if (SecondsSince(t0) > options.ready_timeout_seconds) {
      return absl::DeadlineExceededError(absl::StrCat(
          "signround-server not ready after ", options.ready_timeout_seconds, " s; log:\n",
          server->LogTail()));  // the destructor kills it
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ <= 0) return;
  const std::vector<pid_t> children = ChildPids();
  Kill9();
  // Workers of a server that died are orphans; they are ours to end.
  for (pid_t child : children) ::kill(child, SIGKILL);
}

std::string ServerProcess::LogTail(int lines) const {
  return TailLines(ReadFileOrEmpty(log_path_), lines);
}

void ServerProcess::Kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  WaitFor(pid_, 1e9);
  pid_ = -1;
}

absl::Status ServerProcess::Stop(double timeout_seconds) {
  if (pid_ <= 0) return absl::FailedPreconditionError("the server is not running");
  ::kill(pid_, SIGTERM);
  std::optional<int> status = WaitFor(pid_, timeout_seconds);
  if (!status) {
    Kill9();
    return absl::DeadlineExceededError(
        absl::StrCat("signround-server still running ", timeout_seconds, " s after SIGTERM"));
  }
  pid_ = -1;
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("signround-server stopped with ", DescribeWaitStatus(*status)));
}

std::vector<pid_t> ServerProcess::ChildPids() const {
  std::vector<pid_t> children;
  if (pid_ <= 0) return children;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return children;
  while (struct dirent* entry = ::readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    pid_t ppid = 0;
    char state = 0;
    if (ReadProcStat(pid, &ppid, &state) && ppid == pid_ && state != 'Z' && state != 'X') {
      children.push_back(pid);
    }
  }
  ::closedir(proc);
  return children;
}

CliResult RunCli(const std::string& server_address, const std::vector<std::string>& args,
                 double timeout_seconds) {
  return RunCli(server_address, CliAuth(), args, timeout_seconds);
}

CliResult RunCli(const std::string& server_address, const CliAuth& auth,
                 const std::vector<std::string>& args, double timeout_seconds) {
  CliResult result;
  const char* base = std::getenv("TMPDIR");
  std::string dir_tmpl = std::string(base && *base ? base : "/tmp") + "/signround-cli-XXXXXX";
  if (::mkdtemp(dir_tmpl.data()) == nullptr) {
    result.err = absl::StrCat("mkdtemp: errno ", errno);
    return result;
  }
  SpawnOptions spawn;
  spawn.argv = {SIGNROUND_CLI_BIN, "--server", server_address};
  spawn.argv.insert(spawn.argv.end(), auth.global_args.begin(), auth.global_args.end());
  spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
  for (char** e = environ; *e != nullptr; ++e) {
    // Only the address and credentials given here: never ones from the environment.
    const absl::string_view entry(*e);
    const absl::string_view name = entry.substr(0, entry.find('='));
    if (name == "SIGNROUND_SERVER" || name == "SIGNROUND_TOKEN" ||
        absl::StartsWith(name, "SIGNROUND_TLS_") || auth.env.count(std::string(name)) > 0) {
      continue;
    }
    spawn.env.push_back(*e);
  }
  for (const auto& [name, value] : auth.env) spawn.env.push_back(name + "=" + value);
  spawn.stdout_path = dir_tmpl + "/out";
  spawn.stderr_path = dir_tmpl + "/err";
  pid_t pid = SpawnProcess(spawn);
  if (pid < 0) {
    result.err = absl::StrCat("cannot start ", SIGNROUND_CLI_BIN, ": errno ", errno);
  } else {
    std::optional<int> status = WaitFor(pid, timeout_seconds);
    if (!status) {
      ::kill(pid, SIGKILL);
      WaitFor(pid, 1e9);
      result.exit_code = -1;
    } else {
      result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
    }
    result.out = ReadFileOrEmpty(spawn.stdout_path);
    result.err = ReadFileOrEmpty(spawn.stderr_path);
    if (!status) absl::StrAppend(&result.err, "\n[test: killed after ", timeout_seconds, " s]");
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_tmpl, ec);
  return result;
}

absl::StatusOr<std::pair<int, std::string>> HttpGet(const std::string& address,
                                                    const std::string& path) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("bad address '", address, "'"));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad IPv4 host in '", address, "'"));
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: errno ", errno));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("connect ", address, ": errno ", err));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", address, "\r\nConnection: close\r\n\r\n");
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("send to ", address, " failed"));
  }
  std::string response;
  char buf[8192];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.x CODE REASON\r\n...headers...\r\n\r\nbody"
  const size_t sp = response.find(' ');
  const size_t body = response.find("\r\n\r\n");
  int code = 0;
  if (response.rfind("HTTP/", 0) != 0 || sp == std::string::npos || body == std::string::npos ||
      !absl::SimpleAtoi(response.substr(sp + 1, 3), &code)) {
    return absl::DataLossError(
        absl::StrCat("not an HTTP response from ", address, ": '", response.substr(0, 80), "'"));
  }
  return std::make_pair(code, response.substr(body + 4));
}

}  // namespace signround::testing
