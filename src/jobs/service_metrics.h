// The job service's Prometheus metrics (the RPC counters live in server/).
#pragma once

#include "src/metrics/metrics.h"

namespace signround::jobs {

struct ServiceMetrics {
  explicit ServiceMetrics(metrics::Registry& r);

  metrics::Family<metrics::Counter>& submissions;     // {result: created|duplicate}
  metrics::Family<metrics::Gauge>& jobs;              // {state}, set at scrape time
  metrics::Gauge& queue_depth;                        // QUEUED jobs, at scrape time
  metrics::Family<metrics::Histogram>& job_seconds;   // {state}: create to end
  metrics::Histogram& block_seconds;                  // per tuned block
  metrics::Family<metrics::Gauge>& slot_busy;         // {device}: 1 while running a job
  metrics::Counter& upload_bytes;
  metrics::Family<metrics::Counter>& attempts;        // {outcome}
};

}  // namespace signround::jobs
