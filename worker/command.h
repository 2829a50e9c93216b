// Shared plumbing of the worker's subcommands.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace signround::worker {

// quantize: the tuning finished and report.json is written, but at least one
// export format failed (report.json's "failed_outputs"); the others are written.
inline constexpr int kExitSomeFormatsFailed = 3;

// Prints "signround-worker: error: <message>" on one line to stderr and returns
// the process exit code for `status` (2 for bad input, 1 otherwise).
int ReportError(const absl::Status& status);

// Sets LibTorch's intra-op threads and OpenBLAS's threads to `threads` (0
// leaves both at their defaults).
void ConfigureEngineThreads(int threads);

// Process-wide allocator settings for the engine: freed activation buffers
// (attention scores are tens of MB) stay in the heap instead of going back to
// the kernel after every op, which otherwise page-faults them in afresh on
// every block call (measured: twice the wall time of a small model's eval).
void ConfigureEngineAllocator();

}  // namespace signround::worker
