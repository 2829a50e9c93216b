// The Caller of a request from its Authorization values, for every front end of the
// service (the gRPC metadata, the dashboard's HTTP headers): without an authenticator
// (no --tokens-file) the default Caller, an admin of the "" tenant; with one, the
// principal of the bearer token (UNAUTHENTICATED when there is none or an unknown one).
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/auth/authenticator.h"
#include "src/jobs/job.h"

namespace signround::jobs {

absl::StatusOr<Caller> AuthenticateCaller(const auth::Authenticator* authenticator,
                                          const std::vector<absl::string_view>& authorization);

}  // namespace signround::jobs
