#include "client/connection.h"

#include <grpc/support/log.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "client/render.h"
#include "src/auth/tokens_file.h"
#include "src/common/file_util.h"

namespace signround::cli {
namespace {

constexpr uint64_t kMaxTokenFileBytes = 64 << 10;

// The channel's own reconnect backoff, matching watch's (0.2 s doubling to 5 s):
// gRPC's defaults (1 s growing to 120 s) would keep a restarted server unseen.
grpc::ChannelArguments ChannelArgs(const Security& security) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  // GRPC_SSL_TARGET_NAME_OVERRIDE_ARG: the name checked in the server's certificate.
  if (security.tls && !security.server_name.empty()) {
    args.SetSslTargetNameOverride(security.server_name);
  }
  return args;
}

// gRPC logs its own errors to stderr, where the CLI promises one line per
// failure: keep them out unless GRPC_VERBOSITY asks for them.
void QuietGrpcLogs() {
  const char* verbosity = std::getenv("GRPC_VERBOSITY");
  if (verbosity == nullptr || verbosity[0] == '\0') {
    gpr_set_log_function([](gpr_log_func_args*) {});
  }
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const Security& security) {
  if (!security.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = security.root_certs_pem;  // "": gRPC's default roots
  ssl.pem_cert_chain = security.cert_chain_pem;
  ssl.pem_private_key = security.private_key_pem;
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, const Security& security) {
  static const bool quiet = (QuietGrpcLogs(), true);
  (void)quiet;
  return grpc::CreateCustomChannel(target, ChannelCredentials(security), ChannelArgs(security));
}

// The token from --token-file, else $SIGNROUND_TOKEN; "" for none. Errors
// never contain the token.
absl::StatusOr<std::string> LoadToken(const PathOption& token_file) {
  std::string token;
  std::string where;
  if (!token_file.path.empty()) {
    where = absl::StrCat(token_file.name, ": ", token_file.path);
    absl::StatusOr<std::string> text = ReadFileToString(token_file.path, kMaxTokenFileBytes);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(token_file.name, ": ", text.status().message()));
    }
    token = std::string(absl::StripAsciiWhitespace(*text));
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": empty (want the bearer token)"));
    }
  } else {
    const char* env = std::getenv("SIGNROUND_TOKEN");
    if (env == nullptr || env[0] == '\0') return std::string();
    where = "$SIGNROUND_TOKEN";
    token = std::string(absl::StripAsciiWhitespace(env));
    if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": only whitespace"));
  }
  if (token.size() > auth::kMaxTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": the token is ", token.size(),
                                                   " bytes, over the limit of ",
                                                   auth::kMaxTokenBytes));
  }
  if (!auth::IsValidBearerToken(token)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     ": not a valid bearer token (want A-Z a-z 0-9 - . _ ~ + / then optional = "
                     "padding, on one line)"));
  }
  return token;
}

// Whether an UNAVAILABLE before connecting may come from TLS: with TLS on,
// anything but "nothing listens there" / "no such host" (a failed handshake,
// a refused client certificate, the peer closing the connection); with TLS
// off, the TLS server closing a plaintext connection.
bool MayBeTlsTrouble(absl::string_view message, bool tls) {
  if (!tls) return absl::StrContains(message, "Socket closed");
  for (absl::string_view plain : {"Connection refused", "connection refused", "DNS resolution",
                                  "Name or service not known", "name resolution"}) {
    if (absl::StrContains(message, plain)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<Security> LoadSecurity(const GlobalOptions& options) {
  Security security;
  const bool has_cert = !options.tls_cert.path.empty();
  const bool has_key = !options.tls_key.path.empty();
  if (has_cert != has_key) {
    const PathOption& given = has_cert ? options.tls_cert : options.tls_key;
    const PathOption& missing = has_cert ? options.tls_key : options.tls_cert;
    return absl::InvalidArgumentError(absl::StrCat(
        given.name, " needs ", missing.name, ": a client certificate and its key go together"));
  }
  security.tls = options.tls || !options.tls_ca.path.empty() || has_cert;
  if (!options.tls_server_name.empty() && !security.tls) {
    return absl::InvalidArgumentError(
        "--tls-server-name needs TLS (--tls, --tls-ca or --tls-cert)");
  }
  security.server_name = options.tls_server_name;
  if (!options.tls_ca.path.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPemFile(options.tls_ca.name, options.tls_ca.path, PemKind::kCertificates);
    if (!ca.ok()) return ca.status();
    security.root_certs_pem = *std::move(ca);
  }
  if (has_cert) {
    absl::StatusOr<std::string> cert =
        ReadPemFile(options.tls_cert.name, options.tls_cert.path, PemKind::kCertificates);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        ReadPemFile(options.tls_key.name, options.tls_key.path, PemKind::kPrivateKey);
    if (!key.ok()) return key.status();
    security.cert_chain_pem = *std::move(cert);
    security.private_key_pem = *std::move(key);
  }
  absl::StatusOr<std::string> token = LoadToken(options.token_file);
  if (!token.ok()) return token.status();
  security.token = *std::move(token);
  return security;
}

Connection::Connection(const GlobalOptions& options)
    : options_(options),
      channel_(MakeChannel(options.server, options.security)),
      stub_(signround::v1::QuantizationService::NewStub(channel_)) {}

void Connection::Prepare(grpc::ClientContext* context, bool unary) const {
  if (!options_.security.token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.security.token);
  }
  if (unary) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(options_.timeout_s)));
  }
}

bool Connection::WaitForConnected(absl::Time deadline) {
  bool ok = channel_->WaitForConnected(absl::ToChronoTime(deadline));
  if (ok) connected_ = true;
  return ok;
}

int Connection::Fail(absl::string_view rpc, const grpc::Status& status) {
  bool connected = connected_ || channel_->GetState(false) == GRPC_CHANNEL_READY;
  std::string message = OneLine(status.error_message());
  // A failed TLS handshake (wrong CA or name, a client certificate missing or
  // refused) and a plaintext client at a TLS server show as UNAVAILABLE with
  // gRPC's terse words: say where to look.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !connected &&
      MayBeTlsTrouble(message, options_.security.tls)) {
    absl::StrAppend(&message, options_.security.tls
                                  ? " (TLS: check --tls-ca, --tls-cert/--tls-key and "
                                    "--tls-server-name)"
                                  : " (if the server uses TLS: --tls or --tls-ca)");
  }
  std::fprintf(stderr, "signround: %s failed: %s: %s\n", std::string(rpc).c_str(),
               StatusCodeName(status.error_code()).c_str(), message.c_str());
  std::fflush(stderr);
  return ExitCodeForRpc(status.error_code(), connected);
}

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

void PrintError(absl::string_view message) {
  std::fprintf(stderr, "signround: error: %s\n", OneLine(message).c_str());
  std::fflush(stderr);
}

}  // namespace signround::cli
