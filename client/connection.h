// The CLI's connection to signround-server: the global options, one gRPC
// channel and stub (plaintext, TLS or mutual TLS), the bearer token sent on
// every RPC, unary deadlines, and the one-line error report of a failed RPC
// with its exit code.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "signround/v1/quantization_service.grpc.pb.h"

namespace signround::cli {

// A path option that may come from the command line or the environment;
// `name` ("--tls-ca" or "$SIGNROUND_TLS_CA") is what errors about it say.
struct PathOption {
  std::string path;  // "" when not given
  std::string name;
};

// The channel's security and the caller's token, read and checked (see
// LoadSecurity) before any connection is made.
struct Security {
  bool tls = false;
  std::string root_certs_pem;   // "" with tls: the system's roots
  std::string cert_chain_pem;   // client certificate (mTLS); "" for none
  std::string private_key_pem;  // its key
  std::string server_name;      // "" : the name in --server
  std::string token;            // "" : no authorization metadata
};

// Options that apply to every command.
struct GlobalOptions {
  std::string server = "127.0.0.1:50051";  // HOST:PORT (or any gRPC target)
  bool json = false;                       // machine output on stdout
  double timeout_s = 30;                   // deadline of each unary RPC

  // TLS: --tls (system roots), --tls-ca (implies TLS), --tls-cert + --tls-key
  // (client certificate, implies TLS), --tls-server-name.
  bool tls = false;
  PathOption tls_ca{"", "--tls-ca"};
  PathOption tls_cert{"", "--tls-cert"};
  PathOption tls_key{"", "--tls-key"};
  std::string tls_server_name;
  // The bearer token: --token-file, else $SIGNROUND_TOKEN.
  PathOption token_file{"", "--token-file"};

  Security security;  // filled by LoadSecurity
};

// Reads the PEM files and the token named by `options` (the token from
// --token-file, else $SIGNROUND_TOKEN; surrounding whitespace trimmed) and
// checks them. INVALID_ARGUMENT naming the option and path on failure; the
// message never contains a token or a file's content.
absl::StatusOr<Security> LoadSecurity(const GlobalOptions& options);

class Connection {
 public:
  // `options.security` must have been filled by LoadSecurity.
  explicit Connection(const GlobalOptions& options);

  const GlobalOptions& options() const { return options_; }
  signround::v1::QuantizationService::Stub& stub() { return *stub_; }

  // Readies `context` for one RPC: the bearer token (when there is one) as
  // `authorization: Bearer TOKEN` metadata and, for `unary` RPCs, the
  // --timeout deadline. Every RPC's context goes through here.
  void Prepare(grpc::ClientContext* context, bool unary) const;

  // Waits until the channel is connected, or `deadline`.
  bool WaitForConnected(absl::Time deadline);

  // Records that the server answered (an RPC succeeded, an event arrived).
  void MarkConnected() { connected_ = true; }

  // Prints "signround: <rpc> failed: <CODE>: <message>" on one line to stderr
  // and returns the exit code for `status`. An UNAVAILABLE before the channel
  // ever connected gets a hint about TLS (handshake failures look like that).
  int Fail(absl::string_view rpc, const grpc::Status& status);

 private:
  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<signround::v1::QuantizationService::Stub> stub_;
  bool connected_ = false;
};

// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND.
std::string StatusCodeName(grpc::StatusCode code);

// Prints "signround: error: <message>" on one line to stderr.
void PrintError(absl::string_view message);

}  // namespace signround::cli
