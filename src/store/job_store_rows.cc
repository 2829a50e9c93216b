// Rows of the job store: reading and writing jobs and events, and applying
// an event's effect, shared by job_store.cc and job_store_leases.cc.
#include "src/store/job_store_rows.h"

#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/store/job_json.h"

namespace signround::jobs::store_internal {
namespace {

// Whether `payload` may be appended to `job` as it is now.
absl::Status CheckAppend(const Job& job, const EventPayload& payload) {
  if (const auto* c = std::get_if<StateChange>(&payload)) {
    if (!IsKnownState(c->to) || c->to == c->from) {
      return absl::InvalidArgumentError(absl::StrCat("state change from ", JobStateName(c->from),
                                                     " to ", JobStateName(c->to), " of job ",
                                                     Quoted(job.id), ": not a state change"));
    }
    if (c->from != job.state) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", Quoted(job.id), " is ", JobStateName(job.state), ", not ",
                       JobStateName(c->from), ": change to ", JobStateName(c->to), " refused"));
    }
  }
  if (IsTerminal(job.state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", Quoted(job.id), " has ended (", JobStateName(job.state), "): no more events"));
  }
  if (const auto* p = std::get_if<BlockProgress>(&payload)) {
    if (p->stats.index < 0 || p->block_count < 1 || p->stats.index >= p->block_count) {
      return absl::InvalidArgumentError(
          absl::StrCat("block progress of job ", Quoted(job.id), ": block_index ", p->stats.index,
                       " is not within block_count ", p->block_count));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyStateChange(Database& db, const StateChange& change, int64_t now_ms,
                              const std::string& device, Job* job) {
  if (IsActive(job->state) && (change.to == JobState::kRunning || !IsActive(change.to))) {
    SR_ASSIGN_OR_RETURN(Statement close, db.Prepare("UPDATE attempts SET end_ms = ?, outcome = ? "
                                                    "WHERE job_id = ? AND end_ms IS NULL"));
    close.Int(now_ms).Text(JobStateName(change.to)).Text(job->id);
    SR_RETURN_IF_ERROR(close.Run());
  }
  if (change.to == JobState::kRunning) {
    job->attempts += 1;
    job->device = device;
    job->blocks_done = 0;
    if (job->start_time_ms == 0) job->start_time_ms = now_ms;
    SR_ASSIGN_OR_RETURN(Statement open,
                        db.Prepare("INSERT INTO attempts (job_id, attempt, device, start_ms) "
                                   "VALUES (?, ?, ?, ?)"));
    open.Text(job->id).Int(job->attempts).Text(device).Int(now_ms);
    SR_RETURN_IF_ERROR(open.Run());
  }
  if (IsTerminal(change.to)) job->end_time_ms = now_ms;
  if (!IsActive(change.to)) job->lease = Lease{};
  job->state = change.to;
  return absl::OkStatus();
}

// Applies the effect of `payload` to `job` (in memory) and to the attempts table.
absl::Status ApplyEffect(Database& db, const EventPayload& payload, int64_t now_ms,
                         const std::string& device, Job* job) {
  if (const auto* c = std::get_if<StateChange>(&payload)) {
    return ApplyStateChange(db, *c, now_ms, device, job);
  }
  if (const auto* p = std::get_if<BlockProgress>(&payload)) {
    job->blocks_done = p->stats.index + 1;
    job->block_count = p->block_count;
    job->latest_loss = p->stats.loss_best;
    return absl::OkStatus();
  }
  if (const auto* a = std::get_if<Artifact>(&payload)) {
    job->artifacts.push_back(*a);
    return absl::OkStatus();
  }
  const auto& error = std::get<JobError>(payload);
  job->error = error.message;
  SR_ASSIGN_OR_RETURN(Statement stmt,
                      db.Prepare("UPDATE attempts SET error = ? WHERE job_id = ? AND attempt = ?"));
  stmt.Text(error.message).Text(job->id).Int(job->attempts);
  return stmt.Run();
}

}  // namespace

std::string Quoted(absl::string_view id) {
  return absl::StrCat("'", absl::CHexEscape(id.substr(0, 64)), id.size() > 64 ? "...'" : "'");
}

absl::StatusOr<Job> ReadJob(const Statement& row, int64_t* seq) {
  Job job;
  job.id = row.ColumnText(0);
  auto where = [&](absl::string_view column) {
    return absl::StrCat("jobs.", column, " of job ", Quoted(job.id));
  };
  std::optional<JobState> state = ParseJobState(row.ColumnText(1));
  if (!state) return absl::DataLossError(absl::StrCat(where("state"), ": not a job state"));
  job.state = *state;
  SR_ASSIGN_OR_RETURN(nlohmann::json spec, ParseStoredJson(row.ColumnText(2), where("spec")));
  SR_ASSIGN_OR_RETURN(job.spec, JobSpecFromJson(spec, where("spec")));
  job.effective_settings_json = row.ColumnText(3);
  job.create_time_ms = row.ColumnInt(4);
  job.start_time_ms = row.ColumnInt(5);
  job.end_time_ms = row.ColumnInt(6);
  job.attempts = static_cast<int>(row.ColumnInt(7));
  job.error = row.ColumnText(8);
  job.blocks_done = static_cast<int>(row.ColumnInt(9));
  job.block_count = static_cast<int>(row.ColumnInt(10));
  // SQLite stores a NaN as NULL.
  job.latest_loss =
      row.ColumnIsNull(11) ? std::numeric_limits<double>::quiet_NaN() : row.ColumnReal(11);
  SR_ASSIGN_OR_RETURN(nlohmann::json artifacts,
                      ParseStoredJson(row.ColumnText(12), where("artifacts")));
  SR_ASSIGN_OR_RETURN(job.artifacts, ArtifactListFromJson(artifacts, where("artifacts")));
  job.last_sequence = row.ColumnInt(13);
  job.device = row.ColumnText(14);
  job.lease.worker = row.ColumnText(15);
  job.lease.owner = row.ColumnText(16);
  job.lease.expires_ms = row.ColumnInt(17);
  job.lease.cancel_requested = row.ColumnInt(18) != 0;
  if (seq != nullptr) *seq = row.ColumnInt(19);
  job.tenant = row.ColumnText(20);
  return job;
}

absl::StatusOr<Job> LoadJob(Database& db, const std::string& id, bool for_update) {
  SR_ASSIGN_OR_RETURN(Statement stmt,
                      db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?",
                                              for_update ? ForUpdate(db) : "")));
  stmt.Text(id);
  SR_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return JobNotFoundError(id);
  return ReadJob(stmt);
}

absl::Status CheckExists(Database& db, const std::string& id) {
  SR_ASSIGN_OR_RETURN(Statement stmt, db.Prepare("SELECT 1 FROM jobs WHERE id = ?"));
  stmt.Text(id);
  SR_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return JobNotFoundError(id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Job>> ReadJobs(Statement& stmt, std::vector<int64_t>* seqs) {
  std::vector<Job> jobs;
  while (true) {
    SR_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return jobs;
    int64_t seq = 0;
    SR_ASSIGN_OR_RETURN(Job job, ReadJob(stmt, &seq));
    jobs.push_back(std::move(job));
    if (seqs != nullptr) seqs->push_back(seq);
  }
}

absl::StatusOr<std::string> NewUnusedId(Database& db, std::mt19937_64& rng) {
  for (int tries = 0; tries < 16; ++tries) {
    std::string id = absl::StrCat("j-", absl::Hex(rng(), absl::kZeroPad16));
    SR_ASSIGN_OR_RETURN(Statement stmt, db.Prepare("SELECT 1 FROM jobs WHERE id = ?"));
    stmt.Text(id);
    SR_ASSIGN_OR_RETURN(bool taken, stmt.Step());
    if (!taken) return id;
  }
  return absl::InternalError("job store: no unused job id after 16 random draws");
}

absl::Status InsertEvent(Database& db, const JobEvent& event) {
  SR_ASSIGN_OR_RETURN(std::string payload,
                      DumpJson(EventPayloadToJson(event.payload), EventKind(event.payload)));
  SR_ASSIGN_OR_RETURN(Statement stmt,
                      db.Prepare("INSERT INTO events (job_id, sequence, time_ms, attempt, kind, "
                                 "payload) VALUES (?, ?, ?, ?, ?, ?)"));
  stmt.Text(event.job_id).Int(event.sequence).Int(event.time_ms).Int(event.attempt);
  stmt.Text(EventKind(event.payload)).Text(payload);
  return stmt.Run();
}

// Inserts a QUEUED job with id `id`, its labels and its first event.
absl::Status InsertJob(Database& db, const std::string& id, const std::string& tenant,
                       const JobSpec& spec, const std::string& settings, int64_t now_ms) {
  SR_ASSIGN_OR_RETURN(std::string spec_json, DumpJson(JobSpecToJson(spec), "spec"));
  SR_ASSIGN_OR_RETURN(std::string next_seq,
                      db.QueryText("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs"));
  int64_t seq = 0;
  if (!absl::SimpleAtoi(next_seq, &seq)) return absl::InternalError("job store: bad jobs.seq");
  SR_ASSIGN_OR_RETURN(Statement insert,
                      db.Prepare("INSERT INTO jobs (id, seq, state, spec, effective_settings, "
                                 "priority, idempotency_key, create_time_ms, last_sequence, "
                                 "tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"));
  insert.Text(id).Int(seq).Text(JobStateName(JobState::kQueued)).Text(spec_json).Text(settings);
  const std::string key =
      spec.idempotency_key.empty() ? "" : ScopedIdempotencyKey(tenant, spec.idempotency_key);
  insert.Int(spec.priority).TextOrNull(key).Int(now_ms).Text(tenant);
  SR_RETURN_IF_ERROR(insert.Run());
  for (const auto& [key, value] : spec.labels) {
    SR_ASSIGN_OR_RETURN(Statement label,
                        db.Prepare("INSERT INTO job_labels (job_id, key, value) VALUES (?, ?, ?)"));
    label.Text(id).Text(key).Text(value);
    SR_RETURN_IF_ERROR(label.Run());
  }
  StateChange first{JobState::kUnspecified, JobState::kQueued, "submitted"};
  return InsertEvent(db, JobEvent{id, 1, now_ms, 0, first});
}

std::string ScopedIdempotencyKey(const std::string& tenant, const std::string& key) {
  return tenant.empty() ? key : absl::StrCat(tenant, "\x1f", key);
}

absl::StatusOr<std::optional<std::string>> FindByIdempotencyKey(Database& db,
                                                                absl::string_view key) {
  SR_ASSIGN_OR_RETURN(Statement stmt, db.Prepare("SELECT id FROM jobs WHERE idempotency_key = ?"));
  stmt.Text(key);
  SR_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return std::optional<std::string>();
  return std::optional<std::string>(stmt.ColumnText(0));
}

absl::Status UpdateJob(Database& db, const Job& job) {
  SR_ASSIGN_OR_RETURN(std::string artifacts,
                      DumpJson(ArtifactListToJson(job.artifacts), "artifact"));
  SR_ASSIGN_OR_RETURN(Statement stmt,
                      db.Prepare("UPDATE jobs SET state = ?, start_time_ms = ?, end_time_ms = ?, "
                                 "attempts = ?, error = ?, blocks_done = ?, block_count = ?, "
                                 "latest_loss = ?, artifacts = ?, last_sequence = ?, device = ?, "
                                 "lease_worker = ?, lease_owner = ?, lease_expires_ms = ?, "
                                 "cancel_requested = ? WHERE id = ?"));
  stmt.Text(JobStateName(job.state)).Int(job.start_time_ms).Int(job.end_time_ms);
  stmt.Int(job.attempts).Text(job.error).Int(job.blocks_done).Int(job.block_count);
  stmt.Real(job.latest_loss).Text(artifacts).Int(job.last_sequence).Text(job.device);
  stmt.Text(job.lease.worker).Text(job.lease.owner).Int(job.lease.expires_ms);
  stmt.Int(job.lease.cancel_requested ? 1 : 0).Text(job.id);
  return stmt.Run();
}

// Appends `payload` to `job` (read FOR UPDATE in this transaction) and
// applies its effect; `job` is updated to match what is stored.
absl::StatusOr<JobEvent> AppendTo(Database& db, Job& job, const EventPayload& payload,
                                  int64_t now_ms, const std::string& device) {
  SR_RETURN_IF_ERROR(CheckAppend(job, payload));
  SR_RETURN_IF_ERROR(ApplyEffect(db, payload, now_ms, device, &job));
  job.last_sequence += 1;
  JobEvent event{job.id, job.last_sequence, now_ms, job.attempts, payload};
  SR_RETURN_IF_ERROR(InsertEvent(db, event));
  SR_RETURN_IF_ERROR(UpdateJob(db, job));
  return event;
}

absl::Status CheckLease(const Job& job, const std::string& owner) {
  if (job.lease.owner == owner && IsActive(job.state)) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      "job ", Quoted(job.id), ": this worker's lease is gone (the job is ", JobStateName(job.state),
      job.lease.owner.empty() ? "" : ", leased by another worker", ")"));
}

absl::StatusOr<JobEvent> ReadEvent(const Statement& row, const std::string& job_id) {
  JobEvent event;
  event.job_id = job_id;
  event.sequence = row.ColumnInt(0);
  event.time_ms = row.ColumnInt(1);
  event.attempt = static_cast<int>(row.ColumnInt(2));
  const std::string where =
      absl::StrCat("events.payload of job ", Quoted(job_id), " sequence ", event.sequence);
  SR_ASSIGN_OR_RETURN(nlohmann::json payload, ParseStoredJson(row.ColumnText(4), where));
  SR_ASSIGN_OR_RETURN(event.payload, EventPayloadFromJson(row.ColumnText(3), payload, where));
  return event;
}

}  // namespace signround::jobs::store_internal

namespace signround::jobs {

absl::Status JobNotFoundError(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("job ", store_internal::Quoted(id), " not found"));
}

}  // namespace signround::jobs
