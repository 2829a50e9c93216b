// Test-only: a throwaway PKI for TLS and mutual-TLS tests, made with the
// `openssl` command-line tool (no shell): EC P-256 keys, certificates valid
// for one day.
//   ca.pem                     the CA (ca.key its key)
//   server.pem / server.key    signed by the CA; SANs DNS:localhost, IP:127.0.0.1
//   client.pem / client.key    signed by the CA; for clientAuth
//   rogue-ca.pem               a second, unrelated CA
//   rogue-client.pem / .key    a client certificate signed by the rogue CA
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace signround::testing {

struct TestPki {
  std::string dir;
  std::string ca_cert, ca_key;
  std::string server_cert, server_key;
  std::string client_cert, client_key;
  std::string rogue_ca_cert;
  std::string rogue_client_cert, rogue_client_key;
};

// Makes the files above in `dir` (created if missing). NOT_FOUND when no
// `openssl` is on PATH (tests skip then); INTERNAL with openssl's output when a
// step fails.
absl::StatusOr<TestPki> MakeTestPki(const std::string& dir);

}  // namespace signround::testing
