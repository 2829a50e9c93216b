// The caller of an RPC: without --tokens-file the default jobs::Caller (an
// admin of the "" tenant); with it, the principal of the call's bearer token
// (UNAUTHENTICATED when it has none or an unknown one).
#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "src/auth/authenticator.h"
#include "src/jobs/job.h"

namespace signround::server {

absl::StatusOr<jobs::Caller> CallerOf(const grpc::ServerContext& context,
                                      const auth::Authenticator* authenticator);

}  // namespace signround::server
