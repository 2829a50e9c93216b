#include "tests/testing/s3_server.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/testing/spawn.h"

extern char** environ;

namespace signround::testing {
namespace {

// argv[0] as a path: itself if it has a '/', else the first executable of that name on PATH.
std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env) {
  ProcessResult result;
  if (argv.empty()) return result;
  TempDir tmp;
  const std::string out_path = tmp.File("out"), err_path = tmp.File("err");

  SpawnOptions spawn;
  spawn.argv = argv;
  spawn.argv[0] = ResolveProgram(argv[0]);
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view entry = *e;
    env_map[std::string(entry.substr(0, entry.find('=')))] = std::string(entry);
  }
  for (const std::string& entry : extra_env) env_map[entry.substr(0, entry.find('='))] = entry;
  for (auto& [name, entry] : env_map) spawn.env.push_back(entry);
  spawn.stdout_path = out_path;
  spawn.stderr_path = err_path;
  const pid_t pid = SpawnProcess(std::move(spawn));
  if (pid < 0) {
    result.err = absl::StrCat("cannot start ", argv[0], ": errno ", errno);
    return result;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadFileOrEmpty(out_path);
  result.err = ReadFileOrEmpty(err_path);
  return result;
}

absl::StatusOr<S3Endpoint> ParseS3EndpointLine(absl::string_view line) {
  std::map<std::string, std::string> fields;
  for (absl::string_view field :
       absl::StrSplit(absl::StripAsciiWhitespace(line), ' ', absl::SkipEmpty())) {
    size_t eq = field.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("no '=' in '", field, "'"));
    }
    fields[std::string(field.substr(0, eq))] = std::string(field.substr(eq + 1));
  }
  S3Endpoint e;
  for (auto [key, value] :
       {std::pair{"endpoint", &e.url}, std::pair{"access_key", &e.access_key},
        std::pair{"secret_key", &e.secret_key}, std::pair{"region", &e.region}}) {
    auto it = fields.find(key);
    if (it == fields.end() || it->second.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("no ", key, " in '", line, "'"));
    }
    *value = it->second;
  }
  absl::string_view host_port = e.url;
  size_t colon = host_port.rfind(':');
  if (!absl::ConsumePrefix(&host_port, "http://") || colon == absl::string_view::npos ||
      !absl::SimpleAtoi(absl::string_view(e.url).substr(colon + 1), &e.port)) {
    return absl::InvalidArgumentError(absl::StrCat("bad endpoint '", e.url, "'"));
  }
  e.host = std::string(host_port.substr(0, host_port.rfind(':')));
  return e;
}

S3TestServer::~S3TestServer() { Stop().IgnoreError(); }

absl::Status S3TestServer::Start() {
  if (started_) return absl::FailedPreconditionError("S3 test server already started");
  started_ = true;
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult r = RunProcess(
      {"bash", SIGNROUND_S3_SERVER_SCRIPT, "start", state_dir()},
      {absl::StrCat("SWIFT_SERVER_WATCH_PID=", ::getpid()), "SWIFT_SERVER_WATCH_CLEANUP=1"});
  start_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("swift_server.sh start failed (exit ", r.exit_code, "):\n", r.err, r.out));
  }
  absl::StatusOr<S3Endpoint> endpoint = ParseS3EndpointLine(ReadFileOrEmpty(state_dir() + "/env"));
  if (!endpoint.ok()) {
    return absl::InternalError(absl::StrCat("swift_server.sh start: ", endpoint.status().message(),
                                            "\nstdout: ", r.out, "\nstderr: ", r.err));
  }
  endpoint_ = *std::move(endpoint);
  running_ = true;
  return absl::OkStatus();
}

absl::Status S3TestServer::Stop() {
  if (!started_) return absl::OkStatus();
  started_ = running_ = false;
  ProcessResult r = RunProcess({"bash", SIGNROUND_S3_SERVER_SCRIPT, "stop", state_dir()});
  if (r.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("swift_server.sh stop failed (exit ", r.exit_code, "): ", r.err));
  }
  return absl::OkStatus();
}

std::string S3TestServer::LogTail(absl::string_view server, int lines) const {
  std::string log = ReadFileOrEmpty(absl::StrCat(state_dir(), "/log/", server, ".log"));
  std::vector<absl::string_view> all = absl::StrSplit(log, '\n', absl::SkipEmpty());
  size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  return absl::StrJoin(all.begin() + first, all.end(), "\n");
}

}  // namespace signround::testing
