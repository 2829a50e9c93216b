// The SQLite backend of the job store's SQL (sql_db.h): one connection to a
// file, prepared statements, BEGIN IMMEDIATE for write transactions, and
// SQLite result codes turned into absl::Status.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/store/sql_db.h"

namespace signround::jobs {

// Opens or creates the file; the errors name `path`.
absl::StatusOr<std::unique_ptr<sql::Database>> OpenSqlite(const std::string& path);

namespace sqlite {
// `what`: "<what>: <SQLite's message>" with a code for the result code:
// CORRUPT/NOTADB -> DATA_LOSS, BUSY/LOCKED -> UNAVAILABLE, FULL ->
// RESOURCE_EXHAUSTED, CANTOPEN/READONLY/PERM -> FAILED_PRECONDITION, else INTERNAL.
absl::Status ErrorFromCode(int rc, absl::string_view what, absl::string_view message);
}  // namespace sqlite

}  // namespace signround::jobs
