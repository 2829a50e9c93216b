// Durable job state: jobs, their attempts and their events, in SQLite (WAL
// mode) under the server's data directory. Every call commits before it
// returns, so anything a client has been told survives kill -9.
//
// The store applies each event's effect on its job in the same transaction as
// the event itself: a StateChange moves Job.state (compare-and-swap on
// `from`), a BlockProgress updates blocks_done / block_count / latest_loss,
// an Artifact is added to Job.artifacts, a JobError sets Job.error.
// Thread-safe: one connection behind a mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/jobs/job.h"

namespace signround::jobs {

struct ListQuery {
  std::optional<JobState> state;              // nullopt: every state
  std::map<std::string, std::string> labels;  // every pair must match
  int page_size = 50;                         // 1..1000 (validated by the caller)
  std::string page_token;                     // from ListPage::next_page_token
};

struct ListPage {
  std::vector<Job> jobs;        // newest first
  std::string next_page_token;  // empty on the last page
};

// One run of a job on a device slot (the attempts table).
struct AttemptRecord {
  int attempt = 0;  // 1, 2, ...
  std::string device;
  int64_t start_time_ms = 0;
  int64_t end_time_ms = 0;  // 0: still running (or uploading)
  std::string outcome;      // the state it ended in ("QUEUED": re-queued); "" while running
  std::string error;        // the last JobError recorded in this attempt, or ""
};

struct CreateResult {
  Job job;
  bool created = true;  // false: the idempotency key was seen; `job` is the earlier one
};

class JobStore {
 public:
  // Opens (creating when absent) the database at `path`; INTERNAL or
  // FAILED_PRECONDITION naming the file when it cannot be used.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Stores a new QUEUED job with a fresh id ("j-" + 16 hex digits) and its
  // first event (StateChange UNSPECIFIED -> QUEUED). When spec.idempotency_key
  // is not empty and already belongs to a job, returns that job, created=false.
  absl::StatusOr<CreateResult> Create(const JobSpec& spec,
                                      const std::string& effective_settings_json, int64_t now_ms);

  // NOT_FOUND naming the id when there is no such job.
  absl::StatusOr<Job> Get(const std::string& id);

  // Jobs newest first. INVALID_ARGUMENT for a page token this store did not
  // make, a page_size outside 1..1000 or more than 64 label filters.
  absl::StatusOr<ListPage> List(const ListQuery& query);

  // Appends an event (its sequence is assigned: last + 1) and applies its
  // effect, atomically; returns the stored event. A StateChange whose `from`
  // is not the job's current state is FAILED_PRECONDITION and changes nothing.
  // A StateChange into RUNNING counts a new attempt (Job.attempts + 1, an
  // attempts row on `device`, Job.device = device, start_time set once); one
  // out of RUNNING/UPLOADING ends that attempt row; one into an ended state
  // sets end_time. `event.attempt` is filled in by the store (Job.attempts
  // after the change). An attempt row is closed when the job leaves
  // RUNNING/UPLOADING, with outcome = the new state's name and the message of
  // the attempt's last JobError. FAILED_PRECONDITION too for any event on a
  // job that has ended; INVALID_ARGUMENT for a change to UNSPECIFIED or to
  // the same state, or a BlockProgress with negative or inconsistent indices.
  absl::StatusOr<JobEvent> Append(const std::string& job_id, const EventPayload& payload,
                                  int64_t now_ms, const std::string& device = "");

  // The job's events with sequence >= from_sequence, in order, at most `limit`
  // (1..100000, else INVALID_ARGUMENT). NOT_FOUND for an unknown id.
  absl::StatusOr<std::vector<JobEvent>> Events(const std::string& job_id, int64_t from_sequence,
                                               int limit = 1000);

  // The next job to run among QUEUED ones: highest priority first, then oldest.
  // `accepts` filters by the spec's device preference. nullopt when none.
  // `accepts` runs under the store's lock: it must not call the store.
  absl::StatusOr<std::optional<Job>> NextQueued(const std::function<bool(const JobSpec&)>& accepts);

  // Every job in one of `states`, oldest first (restart recovery).
  absl::StatusOr<std::vector<Job>> ListInStates(const std::vector<JobState>& states);

  // Counts of jobs per state (metrics): all six states, 0 when none.
  absl::StatusOr<std::map<JobState, int64_t>> CountByState();

  // The job's attempts, first first. NOT_FOUND for an unknown id.
  absl::StatusOr<std::vector<AttemptRecord>> Attempts(const std::string& job_id);

 private:
  struct Impl;
  explicit JobStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace signround::jobs
