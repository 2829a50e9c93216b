// A thin RAII layer over the SQLite C API for the job store: one connection,
// prepared statements with positionally bound parameters (values are never
// spliced into SQL text), transactions that roll back on error, and SQLite
// result codes turned into absl::Status.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace signround::jobs::sqlite {

// `what`: "<what>: <SQLite's message>" with a code for the result code:
// CORRUPT/NOTADB -> DATA_LOSS, BUSY/LOCKED -> UNAVAILABLE, FULL ->
// RESOURCE_EXHAUSTED, CANTOPEN/READONLY/PERM -> FAILED_PRECONDITION, else INTERNAL.
absl::Status ErrorFromCode(int rc, absl::string_view what, absl::string_view message);

// One prepared statement. Bind the parameters in order, then Step or Run.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  // Each binds the next `?` parameter; a bind error is reported by Step/Run.
  Statement& Int(int64_t value);
  Statement& Real(double value);  // NaN is stored as NULL by SQLite
  Statement& Text(absl::string_view value);
  Statement& TextOrNull(absl::string_view value);  // "" binds NULL
  Statement& Null();

  // true: a row is ready to read; false: the statement is done.
  absl::StatusOr<bool> Step();
  // Steps to the end, ignoring rows.
  absl::Status Run();

  int64_t ColumnInt(int i) const;
  double ColumnReal(int i) const;
  std::string ColumnText(int i) const;  // NULL reads as ""
  bool ColumnIsNull(int i) const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql_head);
  absl::Status BindResult(int rc);

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string sql_head_;  // the start of the SQL text, for error messages
  int next_param_ = 1;
  absl::Status bind_status_;
};

class Database {
 public:
  // Opens or creates the file; the errors name `path`.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  // Runs SQL text without parameters (pragmas, schema); rows are ignored.
  absl::Status Exec(absl::string_view sql);
  // The first column of the first row of `sql` as text ("" when no row).
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

  // Runs `body` between BEGIN IMMEDIATE (write) or BEGIN (read) and COMMIT;
  // rolls back when `body` or the commit fails and returns that error.
  absl::Status Transaction(bool write, const std::function<absl::Status()>& body);

  const std::string& path() const { return path_; }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

}  // namespace signround::jobs::sqlite
