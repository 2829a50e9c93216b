// The job model of the service core, free of gRPC and protobuf: what a client
// asks for (JobSpec), what the store keeps (Job, JobEvent). server/ converts
// these to and from proto/signround/v1; src/jobs/ never sees a proto.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "src/contract/layer_override.h"
#include "src/contract/progress.h"

namespace signround::jobs {

// The numeric values match signround.v1.JobState.
enum class JobState {
  kUnspecified = 0,
  kQueued = 1,
  kRunning = 2,
  kUploading = 3,
  kSucceeded = 4,
  kFailed = 5,
  kCancelled = 6,
};

// "QUEUED", "RUNNING", ... ("UNSPECIFIED" for kUnspecified).
absl::string_view JobStateName(JobState state);
// The inverse of JobStateName, case-insensitive; nullopt for anything else.
std::optional<JobState> ParseJobState(absl::string_view name);
// SUCCEEDED, FAILED and CANCELLED: nothing happens to the job any more.
bool IsTerminal(JobState state);

// A job request as submitted; 0 / empty / nullopt mean "the default". The
// effective settings are resolved by ResolveSettings (job_validation.h).
struct JobSpec {
  std::string model_uri;
  std::string calibration_uri;  // empty: none (RTN only)
  std::string output_uri;
  std::vector<std::string> formats;
  int bits = 0;
  int group_size = 0;
  std::optional<bool> sym;
  std::optional<int> iters;
  double lr = 0;
  double minmax_lr = 0;
  int nsamples = 0;
  int seqlen = 0;
  int batch_size = 0;
  std::optional<uint64_t> seed;
  std::optional<bool> scale_search;            // nullopt: the recipe's
  std::optional<bool> loss_filter;             // nullopt: off
  double target_bits = 0;                      // 0: no mixed bits (AutoScheme)
  std::vector<std::string> scheme_candidates;  // empty: the defaults (with target_bits)
  int teq_iters = 0;                           // 0: no TEQ
  std::string recipe;                          // "", "default", "best", "light", "rtn", "opt_rtn"
  std::vector<contract::LayerOverride> layer_overrides;
  std::string device;  // "", "any", "cpu", "cuda", "cuda:N"
  int priority = 0;
  std::map<std::string, std::string> labels;
  std::string idempotency_key;
  // Waivers of the worker's refusals (--allow-split-fused, --allow-gguf-without-vocab).
  bool allow_split_fused = false;
  bool allow_gguf_without_vocab = false;
  std::string packed_dtype;  // "", "float16", "bfloat16" (any case); "": float16
};

// One file at the output URI.
struct Artifact {
  std::string format;  // export format, or "report"
  std::string uri;
  int64_t bytes = 0;
  std::string sha256;  // lowercase hex
};

struct StateChange {
  JobState from = JobState::kUnspecified;
  JobState to = JobState::kUnspecified;
  std::string reason;
};

// A finished block as the worker reported it (src/contract/progress.h).
using BlockProgress = contract::BlockProgress;

struct JobError {
  std::string message;
  bool will_retry = false;
};

using EventPayload = std::variant<StateChange, BlockProgress, Artifact, JobError>;

struct JobEvent {
  std::string job_id;
  int64_t sequence = 0;  // 1, 2, ... per job
  int64_t time_ms = 0;   // Unix epoch milliseconds
  int attempt = 0;
  EventPayload payload;
};

// Who runs an active job: a worker process claims it for a time and renews
// the claim by heartbeat; when it lapses the job goes back to the queue.
struct Lease {
  std::string worker;             // --worker-name of the process running it
  std::string owner;              // this claim: worker + "/" + process nonce + "/" + attempt
  int64_t expires_ms = 0;         // Unix epoch milliseconds
  bool cancel_requested = false;  // CancelJob came while it ran
};

struct Job {
  std::string id;
  std::string tenant;  // who submitted it ("" without --tokens-file)
  JobSpec spec;
  JobState state = JobState::kUnspecified;
  int64_t create_time_ms = 0;
  int64_t start_time_ms = 0;  // 0: not started
  int64_t end_time_ms = 0;    // 0: not ended
  int attempts = 0;
  std::string error;
  int blocks_done = 0;
  int block_count = 0;
  double latest_loss = 0;
  std::vector<Artifact> artifacts;
  int64_t last_sequence = 0;
  std::string device;  // the slot of the current or last attempt
  std::string effective_settings_json;
  Lease lease;  // held while RUNNING or UPLOADING
};

// Who calls the service. Without --tokens-file every caller is the default:
// an admin of the "" tenant. A submitter sees only its tenant's jobs.
struct Caller {
  std::string tenant;
  bool admin = true;
  std::optional<std::set<std::string>> s3_buckets;  // the buckets it may name; nullopt: any
};

}  // namespace signround::jobs
