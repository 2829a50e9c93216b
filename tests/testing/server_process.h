// Runs the real signround-server binary for service tests: its own data
// directory, free loopback ports (--listen 127.0.0.1:0 --metrics-listen
// 127.0.0.1:0), its log in a file; waits for the ready line on stdout:
//   {"role":"all","grpc":"127.0.0.1:PORT","metrics":"127.0.0.1:PORT","data_dir":"...",
//    "tls":false}
// ("grpc": null for --role=worker, whose grpc_address() is then empty; "tls"
// true with --tls-cert/--tls-key, absent from older servers: false)
// and runs the real `signround` CLI against it. Binary paths come from the
// SIGNROUND_SERVER_BIN / SIGNROUND_CLI_BIN / SIGNROUND_WORKER_BIN definitions
// of the signround_service_testing library.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace signround::testing {

struct ServerProcessOptions {
  std::string data_dir;                 // required; reused across restarts
  std::vector<std::string> extra_args;  // e.g. {"--max-attempts=2", "--s3-endpoint=..."}
  std::map<std::string, std::string> env;  // added to PATH/HOME (e.g. AWS_ACCESS_KEY_ID)
  double ready_timeout_seconds = 60;
};

class ServerProcess {
 public:
  // Starts the server and waits for its ready line; the status message holds
  // the tail of its log when it exits or times out first.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const ServerProcessOptions& options);
  ~ServerProcess();  // SIGKILL if still running, then reap
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  // Whether the gRPC listener speaks TLS (the ready line's "tls").
  bool tls() const { return tls_; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string LogTail(int lines = 40) const;

  // kill -9, then reap: no cleanup of any kind runs in the server.
  void Kill9();
  // SIGTERM and wait up to `timeout_seconds`; the exit status as text on error.
  absl::Status Stop(double timeout_seconds = 30);

  // Pids of the server's live child processes (its signround-worker jobs).
  std::vector<pid_t> ChildPids() const;

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  std::string grpc_address_, metrics_address_, log_path_;
  bool tls_ = false;
};

struct CliResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string out;     // stdout
  std::string err;     // stderr
};

// How the CLI authenticates: global flags placed before the command (e.g.
// {"--tls-ca", pki.ca_cert, "--token-file", path}) and environment variables
// (e.g. {{"SIGNROUND_TOKEN", token}}).
struct CliAuth {
  std::vector<std::string> global_args;
  std::map<std::string, std::string> env;
};

// Runs `signround --server ADDRESS ARGS...` to completion (no shell).
CliResult RunCli(const std::string& server_address, const std::vector<std::string>& args,
                 double timeout_seconds = 300);
// Runs `signround --server ADDRESS AUTH.global_args... ARGS...` with AUTH.env
// added. The test's own SIGNROUND_SERVER, SIGNROUND_TOKEN and SIGNROUND_TLS_*
// are never passed on (in either overload): only what `auth` says.
CliResult RunCli(const std::string& server_address, const CliAuth& auth,
                 const std::vector<std::string>& args, double timeout_seconds = 300);

// GET http://ADDRESS/PATH on loopback; the status code and body.
absl::StatusOr<std::pair<int, std::string>> HttpGet(const std::string& address,
                                                    const std::string& path);

}  // namespace signround::testing
