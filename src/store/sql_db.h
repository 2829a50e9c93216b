// The SQL the job store speaks, over either backend: SQLite (the embedded
// default, sqlite_db.h) or PostgreSQL through libpq (postgres_db.h). One
// connection per Database; statements take positional `?` parameters (values
// are never spliced into SQL text; the Postgres backend rewrites them to $1,
// $2, ...). Backends turn their error codes into absl::Status and never put
// credentials into a message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround::jobs::sql {

enum class Dialect { kSqlite, kPostgres };

// One bound parameter.
struct Param {
  enum class Kind { kNull, kInt, kReal, kText };
  Kind kind = Kind::kNull;
  int64_t int_value = 0;
  double real_value = 0;
  std::string text;
};

// The backend side of a Statement: runs it with its parameters on the first
// Step and then walks its rows.
class Cursor {
 public:
  virtual ~Cursor() = default;
  // true: a row is ready to read; false: no more rows.
  virtual absl::StatusOr<bool> Step(const std::vector<Param>& params) = 0;
  virtual int64_t ColumnInt(int i) const = 0;
  virtual double ColumnReal(int i) const = 0;
  virtual std::string ColumnText(int i) const = 0;  // NULL reads as ""
  virtual bool ColumnIsNull(int i) const = 0;
};

// One statement. Bind the parameters in order, then Step or Run.
class Statement {
 public:
  explicit Statement(std::unique_ptr<Cursor> cursor) : cursor_(std::move(cursor)) {}

  Statement& Int(int64_t value);
  Statement& Real(double value);  // NaN binds NULL (SQLite cannot store NaN)
  Statement& Text(absl::string_view value);
  Statement& TextOrNull(absl::string_view value);  // "" binds NULL
  Statement& Null();

  absl::StatusOr<bool> Step() { return cursor_->Step(params_); }
  // Steps to the end, ignoring rows.
  absl::Status Run();

  int64_t ColumnInt(int i) const { return cursor_->ColumnInt(i); }
  double ColumnReal(int i) const { return cursor_->ColumnReal(i); }
  std::string ColumnText(int i) const { return cursor_->ColumnText(i); }
  bool ColumnIsNull(int i) const { return cursor_->ColumnIsNull(i); }

 private:
  std::unique_ptr<Cursor> cursor_;
  std::vector<Param> params_;
};

class Database {
 public:
  virtual ~Database() = default;
  virtual Dialect dialect() const = 0;
  // Where the database is, for messages: a path, or host:port/dbname (never a password).
  virtual std::string Describe() const = 0;

  virtual absl::StatusOr<Statement> Prepare(absl::string_view sql) = 0;
  // Runs SQL text without parameters (several statements allowed); rows are ignored.
  virtual absl::Status Exec(absl::string_view sql) = 0;
  // The first column of the first row of `sql` as text ("" when no row).
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

  // Runs `body` in one transaction and commits; rolls back when `body` or the
  // commit fails and returns that error. `write`: SQLite takes the write lock
  // up front (BEGIN IMMEDIATE); Postgres ignores it (rows are locked with
  // FOR UPDATE). A Postgres serialization failure or deadlock is ABORTED.
  virtual absl::Status Transaction(bool write, const std::function<absl::Status()>& body) = 0;
};

// "?" -> "$1", "$2", ... outside quoted strings and identifiers.
std::string NumberPlaceholders(absl::string_view sql);

}  // namespace signround::jobs::sql
