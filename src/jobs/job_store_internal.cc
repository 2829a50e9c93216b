#include "src/jobs/job_store_internal.h"

#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"

namespace signround::jobs {
namespace {

constexpr int64_t kSchemaVersion = 1;

// Version 1. A later version adds an upgrade step in EnsureSchema.
constexpr char kSchema[] = R"sql(
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

absl::Status Configure(sqlite::Database& db) {
  SR_RETURN_IF_ERROR(db.Exec("PRAGMA busy_timeout = 10000"));
  SR_ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode = WAL"));
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use write-ahead logging (journal mode is '", mode, "')"));
  }
  SR_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous = FULL"));
  return db.Exec("PRAGMA foreign_keys = ON");
}

absl::Status EnsureSchema(sqlite::Database& db) {
  return db.Transaction(true, [&]() -> absl::Status {
    SR_ASSIGN_OR_RETURN(std::string text, db.QueryText("PRAGMA user_version"));
    int64_t version = 0;
    if (!absl::SimpleAtoi(text, &version)) {
      return absl::InternalError(absl::StrCat("unreadable schema version '", text, "'"));
    }
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("schema version ", version, " is newer than this build's ", kSchemaVersion,
                       "; open it with a newer signround-server"));
    }
    if (version == kSchemaVersion) return absl::OkStatus();
    SR_ASSIGN_OR_RETURN(std::string objects, db.QueryText("SELECT count(*) FROM sqlite_master"));
    if (objects != "0") {
      return absl::FailedPreconditionError(
          "is an SQLite database but not a job store (schema version 0, tables present)");
    }
    SR_RETURN_IF_ERROR(db.Exec(kSchema));
    return db.Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion));
  });
}

uint64_t TokenCheck(uint64_t seq) { return ((seq * 0x9E3779B97F4A7C15ull) >> 56) ^ 0x5a; }

}  // namespace

absl::Status SetUpJobStoreDatabase(sqlite::Database& db) {
  SR_RETURN_IF_ERROR(Configure(db));
  return EnsureSchema(db);
}

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
