// The job service's Prometheus metrics (the RPC counters live in server/).
#pragma once

#include "src/metrics/metrics.h"

namespace signround::jobs {

// signround_job_attempts_total's outcome label, indexed by AttemptOutcome.
inline constexpr const char* kAttemptOutcomes[] = {"succeeded", "retry",       "failed",
                                                   "cancelled", "interrupted", "lost"};

struct ServiceMetrics {
  explicit ServiceMetrics(metrics::Registry& r);

  metrics::Family<metrics::Counter>& submissions;    // {result: created|duplicate}
  metrics::Family<metrics::Gauge>& jobs;             // {state}, set at scrape time
  metrics::Gauge& queue_depth;                       // QUEUED jobs, at scrape time
  metrics::Gauge& watch_streams;                     // open WatchJob streams here
  metrics::Family<metrics::Histogram>& job_seconds;  // {state}: create to end
  metrics::Histogram& block_seconds;                 // per tuned block
  metrics::Family<metrics::Gauge>& slot_busy;        // {device}: 1 while running a job
  metrics::Counter& upload_bytes;
  metrics::Family<metrics::Counter>& attempts;        // {outcome}: kAttemptOutcomes
  metrics::Family<metrics::Counter>& lease_renewals;  // {result: renewed|failed|lost}
  metrics::Counter& leases_lapsed;                    // other workers' leases ended here
};

}  // namespace signround::jobs
