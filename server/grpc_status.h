// The one mapping from absl::Status (the core's errors) to grpc::Status.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace signround::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "INVALID_ARGUMENT", ... for metrics labels.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace signround::server
