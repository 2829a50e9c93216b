// The job store's claims and leases (see job_store.h): Claim, Renew,
// ExpireLeases and RequestCancel, on either backend.
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/store/job_store.h"
#include "src/store/job_store_rows.h"

namespace signround::jobs {

using namespace store_internal;  // NOLINT: the store's own internals

absl::StatusOr<std::optional<Job>> JobStore::Claim(
    const ClaimRequest& request, const std::function<bool(const JobSpec&)>& accepts) {
  std::optional<Job> claimed;
  SR_RETURN_IF_ERROR(impl_->Run(true, [&](Database& db) -> absl::Status {
    claimed.reset();
    // Candidates in queue order, read without locks; each is then locked on
    // its own, skipping one another worker is claiming right now.
    SR_ASSIGN_OR_RETURN(Statement queue,
                        db.Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                " FROM jobs WHERE state "
                                                "= ? ORDER BY priority DESC, seq ASC")));
    queue.Text(JobStateName(JobState::kQueued));
    SR_ASSIGN_OR_RETURN(std::vector<Job> candidates, ReadJobs(queue));
    for (const Job& candidate : candidates) {
      if (accepts && !accepts(candidate.spec)) continue;
      SR_ASSIGN_OR_RETURN(
          Statement lock,
          db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ? AND state = ?",
                                  IsPostgres(db) ? " FOR UPDATE SKIP LOCKED" : "")));
      lock.Text(candidate.id).Text(JobStateName(JobState::kQueued));
      SR_ASSIGN_OR_RETURN(std::vector<Job> rows, ReadJobs(lock));
      if (rows.empty()) continue;  // taken or locked meanwhile
      Job job = std::move(rows[0]);
      SR_RETURN_IF_ERROR(AppendTo(db, job, StateChange{JobState::kQueued, JobState::kRunning, ""},
                                  request.now_ms, request.device)
                             .status());
      job.lease = Lease{request.worker, absl::StrCat(request.instance, "/", job.attempts),
                        request.now_ms + request.lease_ms, false};
      SR_RETURN_IF_ERROR(UpdateJob(db, job));
      claimed = std::move(job);
      return absl::OkStatus();
    }
    return absl::OkStatus();
  }));
  return claimed;
}

absl::StatusOr<Lease> JobStore::Renew(const std::string& job_id, const std::string& owner,
                                      int64_t lease_ms, int64_t now_ms) {
  Lease lease;
  SR_RETURN_IF_ERROR(impl_->Run(true, [&](Database& db) -> absl::Status {
    SR_ASSIGN_OR_RETURN(Job job, LoadJob(db, job_id, /*for_update=*/true));
    SR_RETURN_IF_ERROR(CheckLease(job, owner));
    job.lease.expires_ms = now_ms + lease_ms;
    SR_ASSIGN_OR_RETURN(Statement stmt,
                        db.Prepare("UPDATE jobs SET lease_expires_ms = ? WHERE id = ?"));
    stmt.Int(job.lease.expires_ms).Text(job.id);
    SR_RETURN_IF_ERROR(stmt.Run());
    lease = job.lease;
    return absl::OkStatus();
  }));
  return lease;
}

namespace {

// Ends `job`'s lapsed (or abandoned) lease: see JobStore::ExpireLeases.
absl::Status EndLease(Database& db, Job& job, int64_t now_ms, int max_attempts, bool restarted) {
  const JobState from = job.state;
  if (job.lease.cancel_requested) {
    return AppendTo(db, job, StateChange{from, JobState::kCancelled, "cancelled by request"},
                    now_ms, "")
        .status();
  }
  const bool retry = job.attempts < max_attempts;
  const std::string why =
      restarted
          ? absl::StrCat("worker ", job.lease.worker, " restarted during attempt ", job.attempts)
          : absl::StrCat("worker ", job.lease.worker, " stopped renewing its lease during ",
                         "attempt ", job.attempts);
  if (!restarted) SR_RETURN_IF_ERROR(AppendTo(db, job, JobError{why, retry}, now_ms, "").status());
  StateChange change{from, retry ? JobState::kQueued : JobState::kFailed,
                     retry ? absl::StrCat(why, "; resuming") : "no attempts left"};
  return AppendTo(db, job, change, now_ms, "").status();
}

}  // namespace

absl::StatusOr<std::vector<Job>> JobStore::ExpireLeases(int64_t now_ms, int max_attempts,
                                                        const std::string& worker) {
  std::vector<Job> ended;
  SR_RETURN_IF_ERROR(impl_->Run(true, [&](Database& db) -> absl::Status {
    ended.clear();
    std::string sql =
        absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE state IN (?, ?) AND ",
                     worker.empty() ? "lease_expires_ms < ?" : "lease_worker = ?", " ORDER BY seq",
                     IsPostgres(db) ? " FOR UPDATE SKIP LOCKED" : "");
    SR_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
    stmt.Text(JobStateName(JobState::kRunning)).Text(JobStateName(JobState::kUploading));
    if (worker.empty()) {
      stmt.Int(now_ms);
    } else {
      stmt.Text(worker);
    }
    SR_ASSIGN_OR_RETURN(std::vector<Job> jobs, ReadJobs(stmt));
    for (Job& job : jobs) {
      ended.push_back(job);
      SR_RETURN_IF_ERROR(EndLease(db, job, now_ms, max_attempts, !worker.empty()));
    }
    return absl::OkStatus();
  }));
  return ended;
}

absl::StatusOr<Job> JobStore::RequestCancel(const std::string& job_id, int64_t now_ms) {
  Job job;
  SR_RETURN_IF_ERROR(impl_->Run(true, [&](Database& db) -> absl::Status {
    SR_ASSIGN_OR_RETURN(job, LoadJob(db, job_id, /*for_update=*/true));
    if (IsTerminal(job.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job.id, " has already ended (", JobStateName(job.state), ")"));
    }
    if (job.state == JobState::kQueued) {
      return AppendTo(db, job,
                      StateChange{JobState::kQueued, JobState::kCancelled, "cancelled by request"},
                      now_ms, "")
          .status();
    }
    job.lease.cancel_requested = true;
    return UpdateJob(db, job);
  }));
  return job;
}

}  // namespace signround::jobs
