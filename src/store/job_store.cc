#include "src/store/job_store.h"

#include <limits>
#include <mutex>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/store/job_json.h"
#include "src/store/job_store_internal.h"
#include "src/store/job_store_rows.h"
#include "src/store/sqlite_db.h"

namespace signround::jobs {

using namespace store_internal;  // NOLINT: the store's own internals

namespace {

constexpr int kMaxLabelFilters = 64;
constexpr int kMaxEventsLimit = 100000;

absl::Status CheckQueueRoom(Database& db, const CreateOptions& options) {
  SR_ASSIGN_OR_RETURN(Statement stmt,
                      db.Prepare("SELECT COUNT(*) FROM jobs WHERE tenant = ? AND state = ?"));
  stmt.Text(options.tenant).Text(JobStateName(JobState::kQueued));
  SR_ASSIGN_OR_RETURN(bool found, stmt.Step());
  const int64_t queued = found ? stmt.ColumnInt(0) : 0;
  if (queued < options.max_queued) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      options.tenant.empty() ? "this server" : absl::StrCat("tenant '", options.tenant, "'"),
      " has ", queued,
      " queued jobs, the most --max-queued-jobs-per-tenant allows; submit "
      "again once some have started, or cancel some"));
}

}  // namespace

JobStore::JobStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JobStore::~JobStore() = default;

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  SR_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenSqlite(path));
  return Open(std::move(db));
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(std::unique_ptr<Database> db) {
  absl::Status status = SetUpJobStoreDatabase(*db);
  if (!status.ok()) {
    std::string message = absl::StrCat("job store '", db->Describe(), "': ", status.message());
    if (status.code() == absl::StatusCode::kDataLoss) {
      return absl::FailedPreconditionError(message);  // not a database, or a damaged one
    }
    return absl::Status(status.code(), message);
  }
  auto impl = std::make_unique<Impl>();
  impl->db = std::move(db);
  std::random_device device;
  std::seed_seq seed{device(), device(), device(), device()};
  impl->rng.seed(seed);
  return std::unique_ptr<JobStore>(new JobStore(std::move(impl)));
}

absl::StatusOr<CreateResult> JobStore::Create(const JobSpec& spec,
                                              const std::string& effective_settings_json,
                                              int64_t now_ms, const CreateOptions& options) {
  CreateResult result;
  SR_RETURN_IF_ERROR(impl_->Run(true, [&](Database& db) -> absl::Status {
    // Creates from several API replicas take turns (jobs.seq, idempotency keys).
    if (IsPostgres(db)) SR_RETURN_IF_ERROR(db.Exec("SELECT pg_advisory_xact_lock(83678237790002)"));
    result.created = true;
    if (!spec.idempotency_key.empty()) {
      SR_ASSIGN_OR_RETURN(
          std::optional<std::string> earlier,
          FindByIdempotencyKey(db, ScopedIdempotencyKey(options.tenant, spec.idempotency_key)));
      if (earlier) {
        result.created = false;
        SR_ASSIGN_OR_RETURN(result.job, LoadJob(db, *earlier));
        return absl::OkStatus();
      }
    }
    if (options.max_queued > 0) SR_RETURN_IF_ERROR(CheckQueueRoom(db, options));
    SR_ASSIGN_OR_RETURN(std::string id, NewUnusedId(db, impl_->rng));
    SR_RETURN_IF_ERROR(InsertJob(db, id, options.tenant, spec, effective_settings_json, now_ms));
    SR_ASSIGN_OR_RETURN(result.job, LoadJob(db, id));
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<Job> JobStore::Get(const std::string& id) {
  Job job;
  SR_RETURN_IF_ERROR(impl_->Run(false, [&](Database& db) -> absl::Status {
    SR_ASSIGN_OR_RETURN(job, LoadJob(db, id));
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<ListPage> JobStore::List(const ListQuery& query) {
  if (query.page_size < 1 || query.page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", query.page_size, " is not within 1..1000"));
  }
  if (query.labels.size() > kMaxLabelFilters) {
    return absl::InvalidArgumentError(absl::StrCat("labels: at most ", kMaxLabelFilters,
                                                   " label filters, got ", query.labels.size()));
  }
  std::optional<int64_t> before;
  if (!query.page_token.empty()) {
    SR_ASSIGN_OR_RETURN(before, DecodePageToken(query.page_token));
  }
  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE 1 = 1");
  if (query.tenant) absl::StrAppend(&sql, " AND tenant = ?");
  if (query.state) absl::StrAppend(&sql, " AND state = ?");
  if (before) absl::StrAppend(&sql, " AND seq < ?");
  for (size_t i = 0; i < query.labels.size(); ++i) {
    absl::StrAppend(&sql, " AND EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id = jobs.id",
                    " AND l.key = ? AND l.value = ?)");
  }
  absl::StrAppend(&sql, " ORDER BY seq DESC LIMIT ?");
  ListPage page;
  SR_RETURN_IF_ERROR(impl_->Run(false, [&](Database& db) -> absl::Status {
    SR_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
    if (query.tenant) stmt.Text(*query.tenant);
    if (query.state) stmt.Text(JobStateName(*query.state));
    if (before) stmt.Int(*before);
    for (const auto& [key, value] : query.labels) stmt.Text(key).Text(value);
    stmt.Int(query.page_size + 1);
    std::vector<int64_t> seqs;
    SR_ASSIGN_OR_RETURN(page.jobs, ReadJobs(stmt, &seqs));
    if (page.jobs.size() > static_cast<size_t>(query.page_size)) {
      page.jobs.resize(query.page_size);
      page.next_page_token = EncodePageToken(seqs[query.page_size - 1]);
    }
    return absl::OkStatus();
  }));
  return page;
}

absl::StatusOr<JobEvent> JobStore::Append(const std::string& job_id, const EventPayload& payload,
                                          int64_t now_ms, const std::string& device,
                                          const std::string& lease_owner) {
  JobEvent event;
  SR_RETURN_IF_ERROR(impl_->Run(true, [&](Database& db) -> absl::Status {
    SR_ASSIGN_OR_RETURN(Job job, LoadJob(db, job_id, /*for_update=*/true));
    if (!lease_owner.empty()) SR_RETURN_IF_ERROR(CheckLease(job, lease_owner));
    SR_ASSIGN_OR_RETURN(event, AppendTo(db, job, payload, now_ms, device));
    return absl::OkStatus();
  }));
  return event;
}

absl::StatusOr<std::vector<JobEvent>> JobStore::Events(const std::string& job_id,
                                                       int64_t from_sequence, int limit) {
  if (limit < 1 || limit > kMaxEventsLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit: ", limit, " is not within 1..", kMaxEventsLimit));
  }
  std::vector<JobEvent> events;
  SR_RETURN_IF_ERROR(impl_->Run(false, [&](Database& db) -> absl::Status {
    SR_RETURN_IF_ERROR(CheckExists(db, job_id));
    SR_ASSIGN_OR_RETURN(Statement stmt,
                        db.Prepare("SELECT sequence, time_ms, attempt, kind, payload FROM events "
                                   "WHERE job_id = ? AND sequence >= ? ORDER BY sequence LIMIT ?"));
    stmt.Text(job_id).Int(from_sequence).Int(limit);
    while (true) {
      SR_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      SR_ASSIGN_OR_RETURN(JobEvent event, ReadEvent(stmt, job_id));
      events.push_back(std::move(event));
    }
  }));
  return events;
}

absl::StatusOr<std::map<JobState, int64_t>> JobStore::CountByState() {
  std::map<JobState, int64_t> counts;
  for (int s = static_cast<int>(JobState::kQueued); s <= static_cast<int>(JobState::kCancelled);
       ++s) {
    counts[static_cast<JobState>(s)] = 0;
  }
  SR_RETURN_IF_ERROR(impl_->Run(false, [&](Database& db) -> absl::Status {
    SR_ASSIGN_OR_RETURN(Statement stmt,
                        db.Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
    while (true) {
      SR_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      std::optional<JobState> state = ParseJobState(stmt.ColumnText(0));
      if (!state) return absl::DataLossError("jobs.state: a row holds no job state name");
      counts[*state] = stmt.ColumnInt(1);
    }
  }));
  return counts;
}

absl::StatusOr<std::vector<AttemptRecord>> JobStore::Attempts(const std::string& job_id) {
  std::vector<AttemptRecord> attempts;
  SR_RETURN_IF_ERROR(impl_->Run(false, [&](Database& db) -> absl::Status {
    SR_RETURN_IF_ERROR(CheckExists(db, job_id));
    SR_ASSIGN_OR_RETURN(Statement stmt,
                        db.Prepare("SELECT attempt, device, start_ms, end_ms, outcome, error "
                                   "FROM attempts WHERE job_id = ? ORDER BY attempt"));
    stmt.Text(job_id);
    while (true) {
      SR_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      attempts.push_back(AttemptRecord{static_cast<int>(stmt.ColumnInt(0)), stmt.ColumnText(1),
                                       stmt.ColumnInt(2), stmt.ColumnInt(3), stmt.ColumnText(4),
                                       stmt.ColumnText(5)});
    }
  }));
  return attempts;
}

}  // namespace signround::jobs