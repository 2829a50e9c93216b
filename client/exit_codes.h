// The exit codes of the `signround` CLI, for scripts to branch on, and the
// mapping from gRPC status codes and job states to them.
#pragma once

#include <grpcpp/support/status.h>

#include "signround/v1/quantization_service.pb.h"

namespace signround::cli {

enum ExitCode : int {
  kExitOk = 0,             // success; for watch / submit --watch: the job SUCCEEDED
  kExitError = 1,          // any other error
  kExitInvalid = 2,        // usage error, or INVALID_ARGUMENT from the server
  kExitUnreachable = 3,    // UNAVAILABLE, or DEADLINE_EXCEEDED before connecting
  kExitNotFound = 4,       // NOT_FOUND (unknown job id)
  kExitPrecondition = 5,   // FAILED_PRECONDITION (e.g. cancel of an ended job)
  kExitAuth = 6,           // UNAUTHENTICATED or PERMISSION_DENIED (token, tenant, roots)
  kExitLimit = 7,          // RESOURCE_EXHAUSTED (a server limit: retry later or ask less)
  kExitJobFailed = 10,     // watch: the job FAILED
  kExitJobCancelled = 11,  // watch: the job was CANCELLED
};

// The exit code for a failed RPC. `connected`: whether the channel had reached
// the server (a DEADLINE_EXCEEDED before that means the server is unreachable).
inline int ExitCodeForRpc(grpc::StatusCode code, bool connected) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return kExitInvalid;
    case grpc::StatusCode::UNAVAILABLE:
      return kExitUnreachable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return connected ? kExitError : kExitUnreachable;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return kExitPrecondition;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitAuth;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kExitLimit;
    default:
      return kExitError;
  }
}

// The exit code of a watch that saw the job end in `state`; kExitError for a
// state that has not ended.
inline int ExitCodeForFinalState(signround::v1::JobState state) {
  switch (state) {
    case signround::v1::JOB_STATE_SUCCEEDED:
      return kExitOk;
    case signround::v1::JOB_STATE_FAILED:
      return kExitJobFailed;
    case signround::v1::JOB_STATE_CANCELLED:
      return kExitJobCancelled;
    default:
      return kExitError;
  }
}

// True for SUCCEEDED, FAILED and CANCELLED.
inline bool IsEnded(signround::v1::JobState state) {
  return state == signround::v1::JOB_STATE_SUCCEEDED || state == signround::v1::JOB_STATE_FAILED ||
         state == signround::v1::JOB_STATE_CANCELLED;
}

// The help text's list of exit codes.
inline constexpr const char* kExitCodesHelp =
    "Exit codes:\n"
    "  0   success (watch, submit --watch: the job SUCCEEDED)\n"
    "  1   any other error\n"
    "  2   invalid request: usage error, bad --layer-config, an unreadable --tls-*/--token-file\n"
    "      file, a malformed token, or INVALID_ARGUMENT from the server\n"
    "  3   server unreachable: UNAVAILABLE (also a failed TLS handshake), or DEADLINE_EXCEEDED\n"
    "      before connecting\n"
    "  4   NOT_FOUND: no such job (or another tenant's)\n"
    "  5   FAILED_PRECONDITION: e.g. cancel of a job that has ended\n"
    "  6   UNAUTHENTICATED (no or unknown token) or PERMISSION_DENIED (not allowed)\n"
    "  7   RESOURCE_EXHAUSTED: a server limit was hit (retry later, or ask for less)\n"
    "  10  watch, submit --watch: the job FAILED\n"
    "  11  watch, submit --watch: the job was CANCELLED\n";

}  // namespace signround::cli
