// The CLI's connection to signround-server: the global options, one gRPC
// channel and stub, unary deadlines, and the one-line error report of a failed
// RPC with its exit code.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "signround/v1/quantization_service.grpc.pb.h"

namespace signround::cli {

// Options that apply to every command.
struct GlobalOptions {
  std::string server = "127.0.0.1:50051";  // HOST:PORT (or any gRPC target)
  bool json = false;                       // machine output on stdout
  double timeout_s = 30;                   // deadline of each unary RPC
};

class Connection {
 public:
  explicit Connection(const GlobalOptions& options);

  const GlobalOptions& options() const { return options_; }
  signround::v1::QuantizationService::Stub& stub() { return *stub_; }

  // Sets the unary deadline (--timeout) on `context`.
  void SetUnaryDeadline(grpc::ClientContext* context) const;

  // Waits until the channel is connected, or `deadline`.
  bool WaitForConnected(absl::Time deadline);

  // Records that the server answered (an RPC succeeded, an event arrived).
  void MarkConnected() { connected_ = true; }

  // Prints "signround: <rpc> failed: <CODE>: <message>" on one line to stderr
  // and returns the exit code for `status`.
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
