// signround-server: the job service core (src/jobs) with, by --role, the gRPC
// API (with health and reflection: roles all and api) and device slots (roles
// all and worker), and the HTTP metrics / health endpoints in every role (with the
// web dashboard in roles all and api).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "src/jobs/job_service.h"

namespace signround::server {

struct ServerOptions {
  std::string role = "all";  // all, api or worker
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";
  // The web dashboard and its JSON API on the metrics_listen port (roles all and api).
  bool dashboard = true;
  std::string devices = "cpu";         // "cpu" or "cuda:0,cuda:1,..."
  std::string s3_addressing = "auto";  // auto, path or virtual
  // TLS on the gRPC listener (PEM files); with tls_client_ca, clients must
  // present a certificate signed by it (mTLS).
  std::string tls_cert, tls_key, tls_client_ca;
  int tls_reload_seconds = 60;  // how often the TLS files are checked for rotation
  std::string tokens_file;      // bearer tokens and tenants (src/auth); empty: no authentication
  std::vector<std::string> allowed_local_roots;  // empty: file:// anywhere
  int max_request_bytes = 1 << 20;               // the largest request message gRPC accepts
  jobs::JobServiceOptions jobs;                  // data_dir, max_attempts, worker_bin, ...
};

// Runs until SIGTERM or SIGINT (SIGHUP re-reads the tokens file); prints the
// ready line on stdout once serving.
// An error status for options or resources that do not work (the message
// names the flag or the path).
absl::Status RunServer(ServerOptions options);

// "cpu" or "cuda:0,cuda:1" into slot names; INVALID_ARGUMENT naming --devices.
absl::StatusOr<std::vector<std::string>> ParseDevices(absl::string_view devices);

}  // namespace signround::server
