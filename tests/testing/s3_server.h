// A real S3 API server for tests: tests/s3/swift_server.sh (OpenStack Swift with s3api,
// which checks AWS SigV4 signatures like AWS) run in a scratch directory, on free loopback
// ports, stopped on destruction. The script's path is SIGNROUND_S3_SERVER_SCRIPT, defined
// by the signround_s3_testing library. Starting takes about 4 s and 250 MiB of memory.
//
//   S3TestServer server;
//   absl::Status started = server.Start();
//   ASSERT_TRUE(started.ok()) << started;
//   const S3Endpoint& s3 = server.endpoint();  // s3.url, s3.access_key, s3.secret_key, ...
//
// Also: RunProcess(), fork + exec of a command line tool (curl in tests) with its output.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tests/testing/test_files.h"

namespace signround::testing {

// Where and how to reach an S3 server.
struct S3Endpoint {
  std::string url;   // "http://127.0.0.1:PORT", no trailing slash; path-style buckets
  std::string host;  // "127.0.0.1"
  int port = 0;
  std::string access_key;  // "test:tester"
  std::string secret_key;  // "testing"
  std::string region;      // "us-east-1"
};

// Parses the script's line
// "endpoint=http://HOST:PORT access_key=... secret_key=... region=...".
absl::StatusOr<S3Endpoint> ParseS3EndpointLine(absl::string_view line);

class S3TestServer {
 public:
  S3TestServer() = default;
  // Stop(), then the scratch directory goes. Should the test process die without running
  // this (a crash, a ctest timeout), the script's watchdog stops the server and deletes the
  // directory within a couple of seconds.
  ~S3TestServer();
  S3TestServer(const S3TestServer&) = delete;
  S3TestServer& operator=(const S3TestServer&) = delete;

  // Runs `swift_server.sh start` and waits until the server answers a signed request.
  // On failure the status message holds the script's stderr (with the server logs' tails).
  absl::Status Start();
  // Runs `swift_server.sh stop` (also when Start() failed half way). Idempotent.
  absl::Status Stop();

  bool running() const { return running_; }
  const S3Endpoint& endpoint() const { return endpoint_; }  // valid after Start()
  // Everything the server has: etc/ (configs, rings), srv/ (objects), log/, run/ (pids).
  const std::string& state_dir() const { return dir_.path(); }
  // Seconds Start() took.
  double start_seconds() const { return start_seconds_; }
  // The last `lines` lines of a server's log ("proxy", "object", "account", ...).
  std::string LogTail(absl::string_view server = "proxy", int lines = 20) const;

 private:
  TempDir dir_;
  bool running_ = false;
  bool started_ = false;
  S3Endpoint endpoint_;
  double start_seconds_ = 0;
};

struct ProcessResult {
  int exit_code = -1;  // 128 + N when killed by signal N
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] a path, or a name looked up on PATH) with fork + exec, no shell:
// stdin from /dev/null, stdout and stderr captured (through files: keep them small, write
// bulk data with the tool's own output option). `extra_env` entries ("NAME=value") are
// added to the environment. No descriptor other than 0-2 is inherited.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env = {});

}  // namespace signround::testing
