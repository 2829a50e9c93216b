// signround-server: flags into ServerOptions, then RunServer.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "server/logging.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

namespace {

// signround-worker beside this binary.
std::string DefaultWorkerBin() {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "signround-worker";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + "signround-worker";
}

}  // namespace

int main(int argc, char** argv) {
  signround::server::ServerOptions o;
  signround::jobs::JobServiceOptions& j = o.jobs;
  j.worker_bin = DefaultWorkerBin();
  std::string log_format = "text";
  double cancel_grace_seconds = 10;

  CLI::App app{"signround-server: the SignRound quantization job service"};
  app.add_option("--role", o.role, "all: API, job store and device slots in one process")
      ->capture_default_str();
  app.add_option("--listen", o.listen, "gRPC address (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data-dir", j.data_dir, "Job database, input cache and work directories")
      ->capture_default_str();
  app.add_option("--devices", o.devices, "Device slots: cpu, or cuda:0,cuda:1,...")
      ->capture_default_str();
  app.add_option("--max-attempts", j.max_attempts, "Attempts per job before it FAILS")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen, "HTTP address of /metrics, /healthz, /readyz")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--worker-bin", j.worker_bin, "The signround-worker executable")
      ->capture_default_str();
  app.add_option("--cancel-grace-seconds", cancel_grace_seconds,
                 "Seconds between SIGTERM and SIGKILL when a running job is cancelled")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--worker-threads", j.worker_threads, "CPU threads per worker (0: default)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--s3-endpoint", j.s3.endpoint, "S3 endpoint URL (empty: AWS)");
  app.add_option("--s3-region", j.s3.region, "S3 region")->capture_default_str();
  app.add_option("--s3-addressing", o.s3_addressing, "auto, path or virtual")
      ->check(CLI::IsMember({"auto", "path", "virtual"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  j.cancel_grace = std::chrono::milliseconds(static_cast<int64_t>(cancel_grace_seconds * 1000));

  if (absl::Status s = signround::server::ConfigureLogging(log_format); !s.ok()) {
    std::fprintf(stderr, "signround-server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::Status s = signround::server::RunServer(std::move(o));
  if (!s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
