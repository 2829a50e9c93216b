// Durable job state: jobs, their attempts, their events and the leases of the
// workers running them, in SQLite (WAL mode, the embedded default) or in a
// Postgres shared by many API and worker processes: one code path over
// sql::Database. Every call commits before it returns, so anything a client
// has been told survives kill -9.
//
// The store applies each event's effect on its job in the same transaction as
// the event itself: a StateChange moves Job.state (compare-and-swap on
// `from`), a BlockProgress updates blocks_done / block_count / latest_loss,
// an Artifact is added to Job.artifacts, a JobError sets Job.error.
// Workers claim queued jobs (Claim: SELECT ... FOR UPDATE SKIP LOCKED on
// Postgres), renew their lease by heartbeat (Renew), and a job whose lease
// lapsed goes back to the queue (ExpireLeases). Events a worker appends carry
// its lease owner: one that lost its lease can record nothing more.
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
#include "src/store/sql_db.h"

namespace signround::jobs {

struct ListQuery {
  std::optional<std::string> tenant;          // nullopt: every tenant's jobs
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

struct CreateOptions {
  std::string tenant;      // the job's owner
  int64_t max_queued = 0;  // > 0: the most QUEUED jobs the tenant may have
};

struct CreateResult {
  Job job;
  bool created = true;  // false: the idempotency key was seen; `job` is the earlier one
};

// A worker's claim on the next queued job.
struct ClaimRequest {
  std::string device;    // the slot: "cpu", "cuda:0", ...
  std::string worker;    // --worker-name
  std::string instance;  // worker + "/" + a nonce of this process
  int64_t lease_ms = 30000;
  int64_t now_ms = 0;
};

// NOT_FOUND "job '<id>' not found", the answer for an unknown id (the id
// escaped and shortened). The job service gives the same answer for another
// tenant's job, so that the two cannot be told apart.
absl::Status JobNotFoundError(absl::string_view id);

class JobStore {
 public:
  // Opens (creating when absent) the SQLite database at `path`; INTERNAL or
  // FAILED_PRECONDITION naming the file when it cannot be used.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  // Takes over a connection (SQLite or Postgres) and migrates its schema.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(std::unique_ptr<sql::Database> db);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Stores a new QUEUED job of options.tenant with a fresh id ("j-" + 16 hex
  // digits) and its first event (StateChange UNSPECIFIED -> QUEUED). When
  // spec.idempotency_key is not empty and already belongs to a job of the
  // same tenant, returns that job, created=false. RESOURCE_EXHAUSTED when the
  // tenant already has options.max_queued QUEUED jobs (counted in the same
  // transaction, so concurrent API replicas cannot overshoot).
  absl::StatusOr<CreateResult> Create(const JobSpec& spec,
                                      const std::string& effective_settings_json, int64_t now_ms,
                                      const CreateOptions& options = {});

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
  // `lease_owner` not empty: ABORTED (and nothing changes) unless the job's
  // lease is that owner's. A change out of RUNNING/UPLOADING ends the lease.
  absl::StatusOr<JobEvent> Append(const std::string& job_id, const EventPayload& payload,
                                  int64_t now_ms, const std::string& device = "",
                                  const std::string& lease_owner = "");

  // The job's events with sequence >= from_sequence, in order, at most `limit`
  // (1..100000, else INVALID_ARGUMENT). NOT_FOUND for an unknown id.
  absl::StatusOr<std::vector<JobEvent>> Events(const std::string& job_id, int64_t from_sequence,
                                               int limit = 1000);

  // Claims the next QUEUED job `accepts` (highest priority first, then
  // oldest; rows another worker is claiming are skipped): appends its change
  // to RUNNING on `request.device` and gives it a lease owned by
  // instance + "/" + its attempt number, expiring lease_ms from now. The job
  // as claimed, or nullopt when none. `accepts` must not call the store.
  absl::StatusOr<std::optional<Job>> Claim(const ClaimRequest& request,
                                           const std::function<bool(const JobSpec&)>& accepts);

  // Extends `owner`'s lease on an active job to now + lease_ms and returns the
  // lease (cancel_requested tells the worker to stop). ABORTED when the lease
  // is no longer that owner's (it lapsed and the job moved on, or it ended).
  absl::StatusOr<Lease> Renew(const std::string& job_id, const std::string& owner, int64_t lease_ms,
                              int64_t now_ms);

  // Active jobs whose lease expired before now_ms (or, with `worker` set,
  // every active job of that worker: a restarted process's own): each goes
  // back to QUEUED with a JobError saying why, or to FAILED when it has had
  // max_attempts, or to CANCELLED when a cancel was asked for. The jobs as
  // they were before; on Postgres, rows being handled elsewhere are skipped.
  absl::StatusOr<std::vector<Job>> ExpireLeases(int64_t now_ms, int max_attempts,
                                                const std::string& worker = "");

  // CancelJob's store half: a QUEUED job becomes CANCELLED at once; an active
  // one is marked cancel_requested for its worker (which ends it). The job
  // after the change. FAILED_PRECONDITION when it had ended.
  absl::StatusOr<Job> RequestCancel(const std::string& job_id, int64_t now_ms);

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
