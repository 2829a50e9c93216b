// Following a job's events (WatchJob) until it ends, reconnecting when the
// stream breaks because the server is restarting.
#pragma once

#include <cstdint>
#include <string>

#include "client/connection.h"
#include "client/render.h"

namespace signround::cli {

struct FollowOptions {
  int64_t from_sequence = 0;        // 0 or 1: from the first event
  double reconnect_timeout_s = 60;  // how long to keep reconnecting after a break
};

// Streams the events of `job_id` into `printer` in sequence order, each once.
// A stream that breaks with UNAVAILABLE is reopened from the last sequence
// seen + 1, with backoff (0.2 s doubling to 5 s), for up to
// reconnect_timeout_s. Returns the exit code: the job's final state (0, 10,
// 11), or the code of the RPC that failed.
int FollowJob(Connection& conn, const std::string& job_id, const FollowOptions& options,
              EventPrinter& printer);

}  // namespace signround::cli
