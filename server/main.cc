// signround-server: flags into ServerOptions, then RunServer.
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdint>
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

// The flags main() converts itself after parsing: the log format, and seconds
// that become the job service's durations.
struct MainFlags {
  std::string log_format = "text";
  double cancel_grace_seconds = 10;
  double lease_seconds = 30;
  double drain_seconds = 0;
};

// --role, and the job store it shares with other processes (scale-out).
void AddDeploymentFlags(CLI::App& app, signround::server::ServerOptions& o, MainFlags& f) {
  signround::jobs::JobServiceOptions& j = o.jobs;
  app.add_option("--role", o.role,
                 "all: API and device slots in one process; api: gRPC API only; worker: device "
                 "slots only (health and metrics over HTTP)")
      ->check(CLI::IsMember({"all", "api", "worker"}))
      ->capture_default_str();
  app.add_option("--store", j.store,
                 "Job store: sqlite:PATH (default DATA_DIR/signround.db) or "
                 "postgres://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass)");
  app.add_option("--worker-name", j.worker_name,
                 "Names this process's job leases (default hostname:DATA_DIR); a restart under "
                 "the same name resumes its jobs at once");
  app.add_option("--lease-seconds", f.lease_seconds,
                 "A running job's lease, renewed every third of it; a job whose lease lapses "
                 "resumes on another worker")
      ->check(CLI::Range(0.3, 3600.0))
      ->capture_default_str();
  app.add_option("--drain-seconds", f.drain_seconds,
                 "On SIGTERM, running jobs may finish their current block for this long before "
                 "they are stopped and released to other workers")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
}

// Where this process serves and keeps its data, its device slots, the attempts
// per job, and its log format.
void AddServiceFlags(CLI::App& app, signround::server::ServerOptions& o, MainFlags& f) {
  signround::jobs::JobServiceOptions& j = o.jobs;
  app.add_option("--listen", o.listen, "gRPC address (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data-dir", j.data_dir, "Job database, input cache and work directories")
      ->capture_default_str();
  app.add_option("--devices", o.devices, "Device slots: cpu, or cuda:0,cuda:1,...")
      ->capture_default_str();
  app.add_option("--max-attempts", j.max_attempts, "Attempts per job before it FAILS")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen,
                 "HTTP address of /metrics, /healthz, /readyz and (roles all and api) the web "
                 "dashboard at /dashboard/")
      ->capture_default_str();
  app.add_option("--dashboard", o.dashboard,
                 "Serve the web dashboard and its JSON API (/api/v1/jobs) on --metrics-listen, "
                 "behind --tokens-file's tokens when set")
      ->capture_default_str();
  app.add_option("--log-format", f.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

// The signround-worker processes that run the jobs.
void AddWorkerFlags(CLI::App& app, signround::jobs::JobServiceOptions& j, MainFlags& f) {
  app.add_option("--worker-bin", j.worker_bin, "The signround-worker executable")
      ->capture_default_str();
  app.add_option("--cancel-grace-seconds", f.cancel_grace_seconds,
                 "Seconds between SIGTERM and SIGKILL when a running job is cancelled")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--worker-threads", j.worker_threads, "CPU threads per worker (0: default)")
      ->check(CLI::Range(0, 1024));
}

void AddS3Flags(CLI::App& app, signround::server::ServerOptions& o) {
  app.add_option("--s3-endpoint", o.jobs.s3.endpoint, "S3 endpoint URL (empty: AWS)");
  app.add_option("--s3-region", o.jobs.s3.region, "S3 region")->capture_default_str();
  app.add_option("--s3-addressing", o.s3_addressing, "auto, path or virtual")
      ->check(CLI::IsMember({"auto", "path", "virtual"}))
      ->capture_default_str();
}

// TLS (and mutual TLS) on the gRPC listener.
void AddTlsFlags(CLI::App& app, signround::server::ServerOptions& o) {
  app.add_option("--tls-cert", o.tls_cert, "PEM certificate chain: serve gRPC over TLS");
  app.add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", o.tls_client_ca,
                 "PEM CA: clients must present a certificate it signed (mutual TLS)");
  app.add_option("--tls-reload-seconds", o.tls_reload_seconds,
                 "How often the --tls-* files are re-read: a rotated certificate, key or client "
                 "CA is served without a restart")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
}

// Who may call the API, and which local paths jobs may read and write.
void AddAccessFlags(CLI::App& app, signround::server::ServerOptions& o) {
  app.add_option("--tokens-file", o.tokens_file,
                 "Bearer tokens (SHA-256 digests) with their tenant and role, and each tenant's "
                 "S3 buckets (JSON, see the README); re-read on SIGHUP. Unset: no authentication");
  app.add_option("--allowed-local-roots", o.allowed_local_roots,
                 "Directories file:// model, calibration and output URIs must resolve into "
                 "(after '..' and symlinks), comma-separated. Unset: anywhere")
      ->delimiter(',');
}

// The request size and the per-tenant limits.
void AddLimitFlags(CLI::App& app, signround::server::ServerOptions& o) {
  signround::jobs::JobServiceOptions& j = o.jobs;
  app.add_option("--max-request-bytes", o.max_request_bytes,
                 "Largest request message accepted (RESOURCE_EXHAUSTED above)")
      ->check(CLI::Range(1024, 64 << 20))
      ->capture_default_str();
  app.add_option("--max-queued-jobs-per-tenant", j.max_queued_jobs_per_tenant,
                 "Queued jobs a tenant may have before SubmitJob answers RESOURCE_EXHAUSTED "
                 "(0: no limit)")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  app.add_option("--max-watches-per-tenant", j.max_watches_per_tenant,
                 "WatchJob streams a tenant may hold open on this server (0: no limit)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

}  // namespace

int main(int argc, char** argv) {
  signround::server::ServerOptions o;
  o.jobs.worker_bin = DefaultWorkerBin();
  MainFlags f;

  // The flags in the order --help lists them.
  CLI::App app{"signround-server: the SignRound quantization job service"};
  AddDeploymentFlags(app, o, f);
  AddServiceFlags(app, o, f);
  AddWorkerFlags(app, o.jobs, f);
  AddS3Flags(app, o);
  AddTlsFlags(app, o);
  AddAccessFlags(app, o);
  AddLimitFlags(app, o);
  CLI11_PARSE(app, argc, argv);
  o.jobs.cancel_grace = Millis(f.cancel_grace_seconds);
  o.jobs.lease = Millis(f.lease_seconds);
  o.jobs.drain = Millis(f.drain_seconds);

  if (absl::Status s = signround::server::ConfigureLogging(f.log_format); !s.ok()) {
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
