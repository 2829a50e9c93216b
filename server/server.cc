#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "server/quantization_service_impl.h"
#include "spdlog/spdlog.h"
#include "src/auth/authenticator.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/dashboard/dashboard.h"
#include "src/metrics/http_endpoints.h"
#include "src/storage/credentials.h"
#include "src/store/postgres_db.h"

namespace signround::server {
namespace {

constexpr char kServiceName[] = "signround.v1.QuantizationService";

absl::Status ConfigureS3(const std::string& addressing, S3Options& s3) {
  if (addressing == "path") {
    s3.path_style = true;
  } else if (addressing == "virtual") {
    s3.path_style = false;
  } else if (addressing != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("--s3-addressing: '", addressing, "' is not auto, path or virtual"));
  }
  // Credentials from the environment; a job that needs S3 without them fails
  // with the store's message, which never holds a secret.
  absl::StatusOr<AwsCredentials> creds = ResolveAwsCredentials(ProcessEnv());
  if (creds.ok()) s3.credentials = *creds;
  s3.log = [](const std::string& line) { spdlog::info("s3: {}", line); };
  return absl::OkStatus();
}

absl::StatusOr<std::string> AbsoluteDataDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("--data-dir: empty");
  SR_RETURN_IF_ERROR(MakeDirectories(dir));
  char* real = ::realpath(dir.c_str(), nullptr);
  if (real == nullptr) return ErrnoStatus(errno, absl::StrCat("--data-dir ", dir));
  std::string out = real;
  std::free(real);
  return out;
}

// The worker executable as an absolute path; INVALID_ARGUMENT naming the flag
// when it is missing or not executable.
absl::StatusOr<std::string> ResolveWorkerBin(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr || ::access(real, X_OK) != 0) {
    std::free(real);
    return absl::InvalidArgumentError(
        absl::StrCat("--worker-bin: '", path, "' is not an executable file"));
  }
  std::string out = real;
  std::free(real);
  return out;
}

// Blocks SIGTERM, SIGINT and SIGHUP in every thread (call before any thread
// starts), so that sigwait receives them.
sigset_t BlockSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Insecure credentials, or TLS from --tls-cert / --tls-key (and mTLS with
// --tls-client-ca); INVALID_ARGUMENT naming the flag for a missing half or an
// unreadable file. The key's content is never part of a message. The files
// are watched: a rotated certificate, key or client CA is served within
// --tls-reload-seconds, without a restart.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const ServerOptions& o) {
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key: give both or neither");
  }
  if (o.tls_cert.empty()) {
    if (!o.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca: needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  // Read once here for errors that name the flag; the provider reads them itself.
  SR_RETURN_IF_ERROR(ReadPemFile("--tls-cert", o.tls_cert, PemKind::kCertificates).status());
  SR_RETURN_IF_ERROR(ReadPemFile("--tls-key", o.tls_key, PemKind::kPrivateKey).status());
  if (!o.tls_client_ca.empty()) {
    SR_RETURN_IF_ERROR(
        ReadPemFile("--tls-client-ca", o.tls_client_ca, PemKind::kCertificates).status());
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.tls_key, o.tls_cert, o.tls_client_ca, static_cast<unsigned int>(o.tls_reload_seconds));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (o.tls_client_ca.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

bool IsLoopback(const std::string& listen) {
  absl::StatusOr<std::pair<std::string, int>> hp = metrics::ParseHostPort(listen);
  return hp.ok() && (hp->first == "127.0.0.1" || hp->first == "localhost" || hp->first == "::1" ||
                     hp->first == "[::1]");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseDevices(absl::string_view devices) {
  std::vector<std::string> out;
  for (absl::string_view d : absl::StrSplit(devices, ',')) {
    int index = 0;
    const bool cuda = absl::StartsWith(d, "cuda:") && d.size() > 5 && d.size() <= 8 &&
                      absl::SimpleAtoi(d.substr(5), &index) && index >= 0 &&
                      absl::StrCat("cuda:", index) == d;
    if (d != "cpu" && !cuda) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices: '", d, "' is not cpu or cuda:N (e.g. cuda:0,cuda:1)"));
    }
    if (absl::c_linear_search(out, std::string(d))) {
      return absl::InvalidArgumentError(absl::StrCat("--devices: '", d, "' is listed twice"));
    }
    out.emplace_back(d);
  }
  return out;
}

namespace {

// The gRPC API on --listen, with health and reflection; its port in *port.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpc(
    const ServerOptions& o, std::shared_ptr<grpc::ServerCredentials> credentials,
    QuantizationServiceImpl* service, int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, credentials, port);
  builder.SetMaxReceiveMessageSize(o.max_request_bytes);
  builder.RegisterService(service);
  std::unique_ptr<grpc::ServerCompletionQueue> watch_queue = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(absl::StrCat("--listen: cannot listen on ", o.listen));
  }
  service->StartWatches(std::move(watch_queue));
  server->GetHealthCheckService()->SetServingStatus(kServiceName, true);
  return server;
}

// A password in --store's URL would sit in the process's argv (ps, /proc) for
// anyone on the machine to read.
absl::Status CheckStoreHasNoPassword(const std::string& store) {
  const bool postgres =
      absl::StartsWith(store, "postgres://") || absl::StartsWith(store, "postgresql://");
  if (!postgres || !jobs::PostgresUrlHasPassword(store)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "--store: the URL holds a password, which anyone on this machine can read in the "
      "process list; give it in PGPASSWORD or ~/.pgpass instead");
}

absl::Status CheckRole(ServerOptions& o) {
  SR_RETURN_IF_ERROR(CheckStoreHasNoPassword(o.jobs.store));
  if (o.role != "all" && o.role != "api" && o.role != "worker") {
    return absl::InvalidArgumentError(
        absl::StrCat("--role: '", o.role, "' is not all, api or worker"));
  }
  o.jobs.run_slots = o.role != "api";
  if (o.role != "all" && o.jobs.store.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store: --role=", o.role,
                     " shares its jobs with other processes; give "
                     "--store=postgres://... (or sqlite:PATH on one machine)"));
  }
  SR_ASSIGN_OR_RETURN(o.jobs.local_roots, LocalRoots::Create(o.allowed_local_roots));
  if (!o.jobs.run_slots) return absl::OkStatus();
  SR_ASSIGN_OR_RETURN(o.jobs.devices, ParseDevices(o.devices));
  SR_ASSIGN_OR_RETURN(o.jobs.data_dir, AbsoluteDataDir(o.jobs.data_dir));
  SR_ASSIGN_OR_RETURN(o.jobs.worker_bin, ResolveWorkerBin(o.jobs.worker_bin));
  return absl::OkStatus();
}

}  // namespace

namespace {

// The API's credentials and request limit (roles all and api), checked before
// anything starts.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> CheckApiOptions(const ServerOptions& o) {
  SR_RETURN_IF_ERROR(metrics::ParseHostPort(o.listen).status());
  SR_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, ServerCredentials(o));
  if (o.max_request_bytes < 1024) {
    return absl::InvalidArgumentError("--max-request-bytes: must be at least 1024");
  }
  return credentials;
}

// The bearer tokens of --tokens-file (roles all and api); null without one.
absl::StatusOr<std::unique_ptr<auth::Authenticator>> LoadAuthenticator(const ServerOptions& o) {
  if (o.tokens_file.empty()) return std::unique_ptr<auth::Authenticator>();
  absl::StatusOr<std::unique_ptr<auth::Authenticator>> loaded =
      auth::Authenticator::Load(o.tokens_file);
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--tokens-file: ", loaded.status().message()));
  }
  if (o.tls_cert.empty() && !IsLoopback(o.listen)) {
    spdlog::warn("--tokens-file without --tls-cert: bearer tokens cross the network in clear");
  }
  return loaded;
}

// The dashboard's routes: roles all and api, unless --dashboard=false. Not with client
// certificates but no tokens: the HTTP port checks no certificate, so anyone reaching it
// would see the jobs that mutual TLS keeps from them.
std::vector<metrics::HttpRoute> DashboardRoutes(const ServerOptions& o, bool api,
                                                jobs::JobService* core,
                                                const auth::Authenticator* authenticator,
                                                metrics::Registry* registry) {
  if (!api || !o.dashboard) return {};
  if (!o.tls_client_ca.empty() && authenticator == nullptr) {
    spdlog::warn(
        "dashboard off: --tls-client-ca without --tokens-file, and the HTTP port of "
        "--metrics-listen checks no client certificate (add --tokens-file to serve it behind "
        "the tokens, or --dashboard=false)");
    return {};
  }
  if (authenticator != nullptr && !IsLoopback(o.metrics_listen)) {
    spdlog::warn(
        "dashboard: its bearer tokens cross the network in clear on --metrics-listen (plain "
        "HTTP): reach it through a TLS-terminating proxy");
  }
  return dashboard::DashboardRoutes(core, authenticator, registry);
}

// The ready line on stdout (JSON: role, gRPC, metrics and dashboard addresses, TLS, data
// directory) and its log line.
void AnnounceReady(const ServerOptions& o, bool api, int grpc_port,
                   const std::string& metrics_address, bool dashboard) {
  nlohmann::json ready_line = {{"role", o.role},
                               {"grpc", nullptr},
                               {"metrics", metrics_address},
                               {"dashboard", nullptr},
                               {"tls", api && !o.tls_cert.empty()}};
  if (dashboard) ready_line["dashboard"] = absl::StrCat("http://", metrics_address, "/dashboard/");
  if (api) {
    ready_line["grpc"] = absl::StrCat(metrics::ParseHostPort(o.listen)->first, ":", grpc_port);
  }
  if (o.jobs.run_slots) ready_line["data_dir"] = o.jobs.data_dir;
  std::printf("%s\n", ready_line.dump().c_str());
  std::fflush(stdout);
  spdlog::info("serving: role {} grpc {} metrics {} devices {} data {}", o.role,
               api ? ready_line["grpc"].get<std::string>() : "-", metrics_address,
               o.jobs.run_slots ? o.devices : "-", o.jobs.run_slots ? o.jobs.data_dir : "-");
}

// SIGHUP: re-reads the tokens file; a file that does not load keeps the
// previous tokens.
void ReloadTokens(auth::Authenticator* authenticator, const std::string& tokens_file) {
  if (!authenticator) {
    spdlog::info("SIGHUP: no --tokens-file to re-read");
    return;
  }
  absl::Status reloaded = authenticator->Reload();
  if (reloaded.ok()) {
    spdlog::info("SIGHUP: re-read {}: {} tokens", tokens_file, authenticator->token_count());
  } else {
    spdlog::error("SIGHUP: kept the previous {} tokens: {}", authenticator->token_count(),
                  std::string(reloaded.message()));
  }
}

// Waits for SIGTERM or SIGINT (reloading the tokens on each SIGHUP); the signal.
int WaitForStopSignal(const sigset_t& signals, auth::Authenticator* authenticator,
                      const std::string& tokens_file) {
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) ReloadTokens(authenticator, tokens_file);
  return sig;
}

// Not serving any more (health), then the core drains and ends running jobs
// first, so open WatchJob streams see it (and are ended UNAVAILABLE), then the gRPC
// server stops.
void StopServing(jobs::JobService& core, QuantizationServiceImpl& service,
                 grpc::Server* grpc_server) {
  if (grpc_server) grpc_server->GetHealthCheckService()->SetServingStatus(false);
  core.Shutdown();
  if (grpc_server) {
    grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    service.StopWatches();
  }
}

}  // namespace

absl::Status RunServer(ServerOptions o) {
  SR_RETURN_IF_ERROR(CheckRole(o));
  SR_RETURN_IF_ERROR(ConfigureS3(o.s3_addressing, o.jobs.s3));
  const bool api = o.role != "worker";
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::unique_ptr<auth::Authenticator> authenticator;
  if (api) {
    SR_ASSIGN_OR_RETURN(credentials, CheckApiOptions(o));
    SR_ASSIGN_OR_RETURN(authenticator, LoadAuthenticator(o));
  }
  const sigset_t signals = BlockSignals();

  metrics::Registry registry;
  SR_ASSIGN_OR_RETURN(std::unique_ptr<jobs::JobService> core,
                      jobs::JobService::Start(o.jobs, registry));
  QuantizationServiceImpl service(*core, registry, authenticator.get());
  std::unique_ptr<grpc::Server> grpc_server;
  int grpc_port = 0;
  if (api) {
    SR_ASSIGN_OR_RETURN(grpc_server, StartGrpc(o, credentials, &service, &grpc_port));
  }

  std::atomic<bool> ready{true};
  metrics::HttpEndpointsOptions http_options;
  http_options.listen = o.metrics_listen;
  http_options.routes = DashboardRoutes(o, api, core.get(), authenticator.get(), &registry);
  const bool dashboard = !http_options.routes.empty();
  SR_ASSIGN_OR_RETURN(
      std::unique_ptr<metrics::HttpEndpoints> http,
      metrics::HttpEndpoints::Start(http_options, &registry, [&ready] { return ready.load(); }));
  AnnounceReady(o, api, grpc_port, http->address(), dashboard);
  if (authenticator) {
    spdlog::info("authentication: {} tokens from {}", authenticator->token_count(), o.tokens_file);
  }
  const int sig = WaitForStopSignal(signals, authenticator.get(), o.tokens_file);
  spdlog::info("signal {}: stopping", sig);
  ready = false;
  StopServing(*core, service, grpc_server.get());
  http.reset();
  spdlog::info("stopped");
  return absl::OkStatus();
}

}  // namespace signround::server
