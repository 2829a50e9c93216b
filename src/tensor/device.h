// Compute devices by name: "cpu" or "cuda:N".
#pragma once

#include <string>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"

namespace signround {

// INVALID_ARGUMENT for anything else, and for cuda:N when this build or
// machine has no CUDA device N.
absl::StatusOr<at::Device> ParseDevice(const std::string& name);

}  // namespace signround
