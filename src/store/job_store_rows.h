// Internal to the job store (job_store.cc, job_store_leases.cc,
// job_store_rows.cc): the row helpers over sql::Database and the store's
// connection behind its mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/jobs/job.h"
#include "src/store/job_store.h"
#include "src/store/sql_db.h"

namespace signround::jobs {
namespace store_internal {

using sql::Database;
using sql::Statement;

// The columns ReadJob expects, in order.
constexpr char kJobColumns[] =
    "id, state, spec, effective_settings, create_time_ms, start_time_ms, end_time_ms, "
    "attempts, error, blocks_done, block_count, latest_loss, artifacts, last_sequence, "
    "device, lease_worker, lease_owner, lease_expires_ms, cancel_requested, seq, tenant";

inline bool IsPostgres(const Database& db) { return db.dialect() == sql::Dialect::kPostgres; }
// Locks the rows a write transaction reads (SQLite's BEGIN IMMEDIATE already
// locks the whole file).
inline const char* ForUpdate(const Database& db) { return IsPostgres(db) ? " FOR UPDATE" : ""; }
inline bool IsKnownState(JobState s) { return s >= JobState::kQueued && s <= JobState::kCancelled; }
inline bool IsActive(JobState s) { return s == JobState::kRunning || s == JobState::kUploading; }

// A caller-supplied id, made safe for an error message.
std::string Quoted(absl::string_view id);

// A row of kJobColumns; `seq` gets jobs.seq.
absl::StatusOr<Job> ReadJob(const Statement& row, int64_t* seq = nullptr);
absl::StatusOr<std::vector<Job>> ReadJobs(Statement& stmt, std::vector<int64_t>* seqs = nullptr);
// NOT_FOUND naming the id when absent; `for_update` locks the row (Postgres).
absl::StatusOr<Job> LoadJob(Database& db, const std::string& id, bool for_update = false);
absl::Status CheckExists(Database& db, const std::string& id);
absl::StatusOr<std::string> NewUnusedId(Database& db, std::mt19937_64& rng);
absl::Status InsertEvent(Database& db, const JobEvent& event);
// Inserts a QUEUED job with id `id`, its labels and its first event.
absl::Status InsertJob(Database& db, const std::string& id, const std::string& tenant,
                       const JobSpec& spec, const std::string& settings, int64_t now_ms);
// The idempotency_key column: the key itself for the "" tenant (as stored
// before tenants existed), else tenant + "\x1f" + key (keys are printable,
// tenant names have no "\x1f": no two tenants' keys can meet).
std::string ScopedIdempotencyKey(const std::string& tenant, const std::string& key);
absl::StatusOr<std::optional<std::string>> FindByIdempotencyKey(Database& db,
                                                                absl::string_view scoped_key);
// Writes every mutable column of `job`.
absl::Status UpdateJob(Database& db, const Job& job);
// Appends `payload` to `job` (read FOR UPDATE in this transaction) and
// applies its effect; `job` is updated to match what is stored.
absl::StatusOr<JobEvent> AppendTo(Database& db, Job& job, const EventPayload& payload,
                                  int64_t now_ms, const std::string& device);
// ABORTED unless `owner` holds the active job's lease.
absl::Status CheckLease(const Job& job, const std::string& owner);
absl::StatusOr<JobEvent> ReadEvent(const Statement& row, const std::string& job_id);

}  // namespace store_internal

struct JobStore::Impl {
  using Database = sql::Database;
  std::unique_ptr<Database> db;
  std::mutex mu;
  std::mt19937_64 rng;

  // One transaction under the lock. Postgres aborts a transaction that lost a
  // serialization race or a deadlock; it is run again from the start.
  absl::Status Run(bool write, const std::function<absl::Status(Database&)>& body) {
    std::lock_guard<std::mutex> lock(mu);
    absl::Status status;
    for (int tries = 0; tries < 5; ++tries) {
      status = db->Transaction(write, [&] { return body(*db); });
      if (status.code() != absl::StatusCode::kAborted || !store_internal::IsPostgres(*db)) {
        return status;
      }
    }
    return status;
  }
};

}  // namespace signround::jobs
