// Pieces of the job store kept apart from job_store.cc: the schema and its
// versioned migrations (SQLite and Postgres), and the opaque page tokens of List.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/store/sql_db.h"

namespace signround::jobs {

// SQLite: sets WAL, synchronous=FULL, foreign keys and a busy timeout. Then
// applies the migrations the database lacks, in one transaction that several
// processes may run at once (SQLite's write lock; a Postgres advisory lock).
// FAILED_PRECONDITION for a schema version newer than this build's or an
// SQLite file that is not a job store.
absl::Status SetUpJobStoreDatabase(sql::Database& db);
int64_t JobStoreSchemaVersion();

// "p" + hex(seq) + "." + two hex digits of a check on seq.
std::string EncodePageToken(int64_t seq);
// The seq of a token from EncodePageToken; INVALID_ARGUMENT "page_token: ..." otherwise.
absl::StatusOr<int64_t> DecodePageToken(absl::string_view token);

}  // namespace signround::jobs
