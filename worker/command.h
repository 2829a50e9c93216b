// Shared plumbing of the worker's subcommands.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace signround::worker {

// Prints "signround-worker: error: <message>" on one line to stderr and returns
// the process exit code for `status` (2 for bad input, 1 otherwise).
int ReportError(const absl::Status& status);

}  // namespace signround::worker
