#include "src/store/job_store_internal.h"

#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"

namespace signround::jobs {
namespace {

// Each migration moves the schema from version N-1 to N, in each dialect.
// Append new ones; never edit a released one.
struct Migration {
  const char* sqlite;
  const char* postgres;
};

constexpr char kJobsV1Sqlite[] = R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY NOT NULL,
  seq INTEGER NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN
    ('QUEUED', 'RUNNING', 'UPLOADING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  spec TEXT NOT NULL,
  effective_settings TEXT NOT NULL,
  priority INTEGER NOT NULL,
  idempotency_key TEXT UNIQUE,
  create_time_ms INTEGER NOT NULL,
  start_time_ms INTEGER NOT NULL DEFAULT 0,
  end_time_ms INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  blocks_done INTEGER NOT NULL DEFAULT 0,
  block_count INTEGER NOT NULL DEFAULT 0,
  latest_loss REAL,
  artifacts TEXT NOT NULL DEFAULT '[]',
  last_sequence INTEGER NOT NULL DEFAULT 0,
  device TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX jobs_queue ON jobs (state, priority DESC, seq ASC);
CREATE TABLE job_labels (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX job_labels_by_pair ON job_labels (key, value);
CREATE TABLE attempts (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  device TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER,
  outcome TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, attempt)
) STRICT, WITHOUT ROWID;
CREATE TABLE events (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  sequence INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  PRIMARY KEY (job_id, sequence)
) STRICT, WITHOUT ROWID;
)sql";

constexpr char kJobsV1Postgres[] = R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  seq BIGINT NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN
    ('QUEUED', 'RUNNING', 'UPLOADING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  spec TEXT NOT NULL,
  effective_settings TEXT NOT NULL,
  priority BIGINT NOT NULL,
  idempotency_key TEXT UNIQUE,
  create_time_ms BIGINT NOT NULL,
  start_time_ms BIGINT NOT NULL DEFAULT 0,
  end_time_ms BIGINT NOT NULL DEFAULT 0,
  attempts BIGINT NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  blocks_done BIGINT NOT NULL DEFAULT 0,
  block_count BIGINT NOT NULL DEFAULT 0,
  latest_loss DOUBLE PRECISION,
  artifacts TEXT NOT NULL DEFAULT '[]',
  last_sequence BIGINT NOT NULL DEFAULT 0,
  device TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_queue ON jobs (state, priority DESC, seq ASC);
CREATE TABLE job_labels (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
);
CREATE INDEX job_labels_by_pair ON job_labels (key, value);
CREATE TABLE attempts (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt BIGINT NOT NULL,
  device TEXT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT,
  outcome TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, attempt)
);
CREATE TABLE events (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  sequence BIGINT NOT NULL,
  time_ms BIGINT NOT NULL,
  attempt BIGINT NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  PRIMARY KEY (job_id, sequence)
);
)sql";

// Version 2: leases (scale-out workers).
constexpr char kLeasesV2Sqlite[] = R"sql(
ALTER TABLE jobs ADD COLUMN lease_worker TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expires_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
)sql";

constexpr char kLeasesV2Postgres[] = R"sql(
ALTER TABLE jobs ADD COLUMN lease_worker TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expires_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_leases ON jobs (state, lease_expires_ms);
)sql";

// Version 3: tenants. An idempotency key is stored scoped to its tenant
// (ScopedIdempotencyKey), so the UNIQUE column needs no change.
constexpr char kTenantsV3[] = R"sql(
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_tenant ON jobs (tenant, state, seq);
)sql";

constexpr Migration kMigrations[] = {
    {kJobsV1Sqlite, kJobsV1Postgres},
    {kLeasesV2Sqlite, kLeasesV2Postgres},
    {kTenantsV3, kTenantsV3},
};
constexpr int64_t kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

// Any two processes that migrate the same Postgres database take this
// transaction-scoped advisory lock first, so migrations run one at a time.
constexpr char kMigrationLock[] = "SELECT pg_advisory_xact_lock(83678237790001)";

absl::Status ConfigureSqlite(sql::Database& db) {
  SR_RETURN_IF_ERROR(db.Exec("PRAGMA busy_timeout = 10000"));
  SR_ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode = WAL"));
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use write-ahead logging (journal mode is '", mode, "')"));
  }
  SR_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous = FULL"));
  return db.Exec("PRAGMA foreign_keys = ON");
}

absl::StatusOr<int64_t> ParseVersion(const std::string& text) {
  int64_t version = 0;
  if (!absl::SimpleAtoi(text, &version) || version < 0) {
    return absl::InternalError(absl::StrCat("unreadable schema version '", text, "'"));
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("schema version ", version, " is newer than this build's ", kSchemaVersion,
                     "; open it with a newer signround-server"));
  }
  return version;
}

// The schema version of an SQLite file (PRAGMA user_version); a file with
// tables but version 0 is someone else's database.
absl::StatusOr<int64_t> SqliteVersion(sql::Database& db) {
  SR_ASSIGN_OR_RETURN(std::string text, db.QueryText("PRAGMA user_version"));
  SR_ASSIGN_OR_RETURN(int64_t version, ParseVersion(text));
  if (version == 0) {
    SR_ASSIGN_OR_RETURN(std::string objects, db.QueryText("SELECT count(*) FROM sqlite_master"));
    if (objects != "0") {
      return absl::FailedPreconditionError(
          "is an SQLite database but not a job store (schema version 0, tables present)");
    }
  }
  return version;
}

absl::StatusOr<int64_t> PostgresVersion(sql::Database& db) {
  SR_RETURN_IF_ERROR(db.Exec(kMigrationLock));
  SR_RETURN_IF_ERROR(
      db.Exec("CREATE TABLE IF NOT EXISTS signround_schema (version BIGINT NOT NULL)"));
  SR_ASSIGN_OR_RETURN(std::string text,
                      db.QueryText("SELECT COALESCE(MAX(version), 0) FROM signround_schema"));
  return ParseVersion(text);
}

absl::Status Migrate(sql::Database& db) {
  const bool pg = db.dialect() == sql::Dialect::kPostgres;
  return db.Transaction(true, [&]() -> absl::Status {
    SR_ASSIGN_OR_RETURN(int64_t version, pg ? PostgresVersion(db) : SqliteVersion(db));
    for (int64_t v = version + 1; v <= kSchemaVersion; ++v) {
      const Migration& m = kMigrations[v - 1];
      SR_RETURN_IF_ERROR(db.Exec(pg ? m.postgres : m.sqlite));
    }
    if (version == kSchemaVersion) return absl::OkStatus();
    if (pg) {
      return db.Exec(
          absl::StrCat("INSERT INTO signround_schema (version) VALUES (", kSchemaVersion, ")"));
    }
    return db.Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion));
  });
}

uint64_t TokenCheck(uint64_t seq) { return ((seq * 0x9E3779B97F4A7C15ull) >> 56) ^ 0x5a; }

}  // namespace

absl::Status SetUpJobStoreDatabase(sql::Database& db) {
  if (db.dialect() == sql::Dialect::kSqlite) SR_RETURN_IF_ERROR(ConfigureSqlite(db));
  return Migrate(db);
}

int64_t JobStoreSchemaVersion() { return kSchemaVersion; }

std::string EncodePageToken(int64_t seq) {
  return absl::StrCat("p", absl::Hex(seq), ".",
                      absl::Hex(TokenCheck(static_cast<uint64_t>(seq)), absl::kZeroPad2));
}

absl::StatusOr<int64_t> DecodePageToken(absl::string_view token) {
  const absl::Status bad = absl::InvalidArgumentError("page_token: not a token from ListJobs");
  size_t dot = token.find('.');
  if (token.size() < 5 || token[0] != 'p' || dot == absl::string_view::npos || dot < 2 ||
      dot > 17 || token.size() != dot + 3) {
    return bad;
  }
  uint64_t parts[2] = {0, 0};
  absl::string_view digits[2] = {token.substr(1, dot - 1), token.substr(dot + 1)};
  for (int i = 0; i < 2; ++i) {
    for (char ch : digits[i]) {
      int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
      if (v < 0) return bad;
      parts[i] = parts[i] * 16 + static_cast<uint64_t>(v);
    }
  }
  if (parts[0] == 0 || parts[0] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      parts[1] != TokenCheck(parts[0])) {
    return bad;
  }
  return static_cast<int64_t>(parts[0]);
}

}  // namespace signround::jobs
