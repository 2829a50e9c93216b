#include "tests/testing/postgres_server.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "src/store/postgres_db.h"
#include "tests/testing/s3_server.h"  // RunProcess
#include "tests/testing/spawn.h"

namespace signround::testing {
namespace {

namespace fs = std::filesystem;

// Where the script will look for the server binaries (the same order as the script).
std::string PostgresBinDir() {
  if (const char* dir = std::getenv("POSTGRES_BIN_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  std::error_code ec;
  std::string best;
  int best_version = -1;
  for (const fs::directory_entry& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int version = 0;
    const std::string bin = entry.path().string() + "/bin";
    if (absl::SimpleAtoi(entry.path().filename().string(), &version) && version > best_version &&
        ::access((bin + "/initdb").c_str(), X_OK) == 0) {
      best_version = version;
      best = bin;
    }
  }
  if (!best.empty()) return best;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    if (!dir.empty() && ::access(absl::StrCat(dir, "/initdb").c_str(), X_OK) == 0) {
      return std::string(dir);
    }
  }
  return "";
}

// "url=postgresql://signround:PASSWORD@127.0.0.1:PORT/postgres" -> its parts.
absl::Status ParseUrlLine(absl::string_view line, std::string* url, std::string* password,
                          int* port) {
  line = absl::StripAsciiWhitespace(line);
  if (!absl::ConsumePrefix(&line, "url=postgresql://signround:")) {
    return absl::InternalError(absl::StrCat("unexpected output '", line, "'"));
  }
  *url = absl::StrCat("postgresql://signround:", line);
  const size_t at = line.find("@127.0.0.1:");
  const size_t slash = line.rfind('/');
  if (at == absl::string_view::npos || slash == absl::string_view::npos || slash < at ||
      !absl::SimpleAtoi(line.substr(at + 11, slash - at - 11), port)) {
    return absl::InternalError(absl::StrCat("no port in '", *url, "'"));
  }
  *password = std::string(line.substr(0, at));
  return absl::OkStatus();
}

}  // namespace

bool PostgresAvailable(std::string* why) {
  std::string reason;
  const std::string bin = PostgresBinDir();
  if (bin.empty()) {
    reason = "no PostgreSQL server binaries (initdb) found; install postgresql-15";
  } else {
    for (const char* tool : {"initdb", "postgres", "pg_isready"}) {
      if (::access(absl::StrCat(bin, "/", tool).c_str(), X_OK) != 0) {
        reason = absl::StrCat("no ", tool, " in ", bin, "; install postgresql-15");
        break;
      }
    }
  }
  if (reason.empty() && ::access(SIGNROUND_POSTGRES_SERVER_SCRIPT, R_OK) != 0) {
    reason = absl::StrCat("no ", SIGNROUND_POSTGRES_SERVER_SCRIPT);
  }
  if (reason.empty() && ::geteuid() == 0 && ::getpwnam("postgres") == nullptr) {
    reason = "running as root needs the 'postgres' system user (Postgres refuses root)";
  }
  if (why != nullptr) *why = reason;
  return reason.empty();
}

PostgresTestServer::~PostgresTestServer() { Stop().IgnoreError(); }

absl::Status PostgresTestServer::Start() {
  if (running_) return absl::FailedPreconditionError("Postgres test server already running");
  started_ = true;
  ProcessResult r = RunProcess(
      {"bash", SIGNROUND_POSTGRES_SERVER_SCRIPT, "start", state_dir()},
      {absl::StrCat("POSTGRES_SERVER_WATCH_PID=", ::getpid()), "POSTGRES_SERVER_WATCH_CLEANUP=1"});
  if (r.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("postgres_server.sh start failed (exit ", r.exit_code, "):\n", r.err, r.out));
  }
  absl::Status parsed =
      ParseUrlLine(ReadFileOrEmpty(state_dir() + "/env"), &url_, &password_, &port_);
  if (!parsed.ok()) {
    return absl::InternalError(absl::StrCat("postgres_server.sh start: ", parsed.message(),
                                            "\nstdout: ", r.out, "\nstderr: ", r.err));
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status PostgresTestServer::Stop() {
  if (!started_) return absl::OkStatus();
  running_ = false;
  ProcessResult r = RunProcess({"bash", SIGNROUND_POSTGRES_SERVER_SCRIPT, "stop", state_dir()});
  if (r.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("postgres_server.sh stop failed (exit ", r.exit_code, "): ", r.err));
  }
  return absl::OkStatus();
}

std::string PostgresTestServer::LogTail(int lines) const {
  std::string log = ReadFileOrEmpty(state_dir() + "/log/postgres.log");
  std::vector<absl::string_view> all = absl::StrSplit(log, '\n', absl::SkipEmpty());
  size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  return absl::StrJoin(all.begin() + first, all.end(), "\n");
}

absl::StatusOr<std::string> PostgresTestServer::CreateDatabase(absl::string_view name) {
  if (!running_) return absl::FailedPreconditionError("Postgres test server not running");
  const bool valid_chars = !name.empty() && name.size() <= 63 && !absl::ascii_isdigit(name[0]) &&
                           std::all_of(name.begin(), name.end(), [](char c) {
                             return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_';
                           });
  if (!valid_chars) {
    return absl::InvalidArgumentError(absl::StrCat("bad database name '", name, "'"));
  }
  absl::StatusOr<std::unique_ptr<jobs::sql::Database>> db = jobs::OpenPostgres(url_);
  if (!db.ok()) return db.status();
  for (const std::string& sql :
       {absl::StrCat("DROP DATABASE IF EXISTS ", name), absl::StrCat("CREATE DATABASE ", name)}) {
    absl::Status status = (*db)->Exec(sql);
    if (!status.ok()) return status;
  }
  absl::string_view base = url_;
  if (!absl::ConsumeSuffix(&base, "/postgres")) {
    return absl::InternalError("the server URL does not end in /postgres");
  }
  return absl::StrCat(base, "/", name);
}

}  // namespace signround::testing
