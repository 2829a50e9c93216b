// A real PostgreSQL server for tests: tests/postgres/postgres_server.sh (Debian's postgresql
// binaries) run in a scratch directory, on a free loopback port, with a random password for
// the superuser `signround`, stopped on destruction. The script's path is
// SIGNROUND_POSTGRES_SERVER_SCRIPT, defined by the signround_postgres_testing library.
// Starting takes about a second (initdb included); a restart after Stop() well under one.
//
//   std::string why;
//   if (!PostgresAvailable(&why)) GTEST_SKIP() << why;
//   PostgresTestServer server;
//   absl::Status started = server.Start();
//   ASSERT_TRUE(started.ok()) << started;
//   absl::StatusOr<std::string> url = server.CreateDatabase("my_test");  // a fresh database
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tests/testing/test_files.h"

namespace signround::testing {

// Whether a Postgres server can be started here: the server binaries (POSTGRES_BIN_DIR, the
// newest /usr/lib/postgresql/*/bin, or initdb on PATH), the script, and, when running as
// root, the `postgres` system user. When not, `why` (if given) says what is missing.
bool PostgresAvailable(std::string* why);

class PostgresTestServer {
 public:
  PostgresTestServer() = default;
  // Stop(), then the scratch directory goes. Should the test process die without running
  // this, the script's watchdog stops the server and deletes the directory.
  ~PostgresTestServer();
  PostgresTestServer(const PostgresTestServer&) = delete;
  PostgresTestServer& operator=(const PostgresTestServer&) = delete;

  // Runs `postgres_server.sh start` and waits until the server accepts connections. After
  // Stop(), starts the same cluster again: same port, password and databases (connections
  // opened before see a server restart). On failure the message holds the script's stderr.
  absl::Status Start();
  // Runs `postgres_server.sh stop` (fast shutdown: open sessions are ended). Idempotent.
  absl::Status Stop();

  bool running() const { return running_; }
  // postgresql://signround:PASSWORD@127.0.0.1:PORT/postgres; valid after Start().
  std::string url() const { return url_; }
  int port() const { return port_; }
  std::string password() const { return password_; }
  // The cluster (data/), the socket directory (s/), log/, run/.
  const std::string& state_dir() const { return dir_.path(); }
  // The last `lines` lines of the server's log.
  std::string LogTail(int lines = 20) const;

  // Creates an empty database `name` (dropping one of that name first) and returns its URL.
  // `name`: lower-case letters, digits and '_', starting with a letter or '_', at most 63.
  absl::StatusOr<std::string> CreateDatabase(absl::string_view name);

 private:
  TempDir dir_;
  bool running_ = false;
  bool started_ = false;  // Start() ran at least once (Stop() has something to stop)
  std::string url_;
  std::string password_;
  int port_ = 0;
};

}  // namespace signround::testing
