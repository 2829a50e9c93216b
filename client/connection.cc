#include "client/connection.h"

#include <grpc/support/log.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "client/render.h"

namespace signround::cli {
namespace {

// The channel's own reconnect backoff, matching watch's (0.2 s doubling to 5 s):
// gRPC's defaults (1 s growing to 120 s) would keep a restarted server unseen.
grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
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

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  static const bool quiet = (QuietGrpcLogs(), true);
  (void)quiet;
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), ChannelArgs());
}

}  // namespace

Connection::Connection(const GlobalOptions& options)
    : options_(options),
      channel_(MakeChannel(options.server)),
      stub_(signround::v1::QuantizationService::NewStub(channel_)) {}

void Connection::SetUnaryDeadline(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(options_.timeout_s)));
}

bool Connection::WaitForConnected(absl::Time deadline) {
  bool ok = channel_->WaitForConnected(absl::ToChronoTime(deadline));
  if (ok) connected_ = true;
  return ok;
}

int Connection::Fail(absl::string_view rpc, const grpc::Status& status) {
  bool connected = connected_ || channel_->GetState(false) == GRPC_CHANNEL_READY;
  std::fprintf(stderr, "signround: %s failed: %s: %s\n", std::string(rpc).c_str(),
               StatusCodeName(status.error_code()).c_str(),
               OneLine(status.error_message()).c_str());
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
