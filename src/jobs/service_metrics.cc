#include "src/jobs/service_metrics.h"

namespace signround::jobs {

ServiceMetrics::ServiceMetrics(metrics::Registry& r)
    : submissions(r.AddCounter("signround_job_submissions_total",
                               "SubmitJob calls that were accepted, by result (created or "
                               "duplicate of an idempotency key)",
                               {"result"})),
      jobs(r.AddGauge("signround_jobs", "Jobs in the store by state", {"state"})),
      queue_depth(r.AddGauge("signround_queue_depth", "Jobs waiting for a device slot").With({})),
      watch_streams(
          r.AddGauge("signround_watch_streams", "WatchJob streams open on this process").With({})),
      job_seconds(r.AddHistogram("signround_job_duration_seconds",
                                 "Seconds from submission to the end of a job, by final state",
                                 metrics::ExponentialBuckets(1, 2, 18), {"state"})),
      block_seconds(r.AddHistogram("signround_block_tuning_seconds",
                                   "Seconds to tune one decoder block",
                                   metrics::ExponentialBuckets(0.01, 2, 20))
                        .With({})),
      slot_busy(
          r.AddGauge("signround_slot_busy", "1 while the device slot runs a job", {"device"})),
      upload_bytes(r.AddCounter("signround_upload_bytes_total",
                                "Bytes of artifacts uploaded to object storage")
                       .With({})),
      attempts(r.AddCounter("signround_job_attempts_total", "Finished job attempts by outcome",
                            {"outcome"})),
      lease_renewals(r.AddCounter("signround_lease_renewals_total",
                                  "Lease renewals of this process's running attempts, by result "
                                  "(renewed; failed: the store did not answer; lost: the lease "
                                  "had gone to another worker)",
                                  {"result"})),
      leases_lapsed(r.AddCounter("signround_leases_lapsed_total",
                                 "Attempts whose worker stopped renewing its lease, ended by this "
                                 "process (the job went back to the queue or failed)")
                        .With({})) {
  // Every known label value from the start, so that rate() and increase() see the first
  // event as a change from 0 (a series born at 1 has no increase).
  for (const char* outcome : kAttemptOutcomes) attempts.With({outcome});
  for (const char* result : {"renewed", "failed", "lost"}) lease_renewals.With({result});
  for (const char* result : {"created", "duplicate"}) submissions.With({result});
}

}  // namespace signround::jobs
