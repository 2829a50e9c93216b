#include "src/jobs/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace signround::jobs::sqlite {

absl::Status ErrorFromCode(int rc, absl::string_view what, absl::string_view message) {
  std::string text = absl::StrCat(what, ": ", message);
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(text);
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

namespace {

absl::Status DbError(sqlite3* db, int rc, absl::string_view what) {
  return ErrorFromCode(rc, what, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

}  // namespace

Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql_head)
    : db_(db), stmt_(stmt), sql_head_(std::move(sql_head)) {}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      sql_head_(std::move(other.sql_head_)),
      next_param_(other.next_param_),
      bind_status_(std::move(other.bind_status_)) {}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

absl::Status Statement::BindResult(int rc) {
  ++next_param_;
  if (rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = DbError(db_, rc, absl::StrCat("SQLite bind (", sql_head_, ")"));
  }
  return bind_status_;
}

Statement& Statement::Int(int64_t value) {
  BindResult(sqlite3_bind_int64(stmt_, next_param_, value)).IgnoreError();
  return *this;
}

Statement& Statement::Real(double value) {
  BindResult(sqlite3_bind_double(stmt_, next_param_, value)).IgnoreError();
  return *this;
}

Statement& Statement::Text(absl::string_view value) {
  BindResult(sqlite3_bind_text64(stmt_, next_param_, value.data(), value.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8))
      .IgnoreError();
  return *this;
}

Statement& Statement::TextOrNull(absl::string_view value) {
  return value.empty() ? Null() : Text(value);
}

Statement& Statement::Null() {
  BindResult(sqlite3_bind_null(stmt_, next_param_)).IgnoreError();
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return DbError(db_, rc, absl::StrCat("SQLite (", sql_head_, ")"));
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }

double Statement::ColumnReal(int i) const { return sqlite3_column_double(stmt_, i); }

std::string Statement::ColumnText(int i) const {
  const unsigned char* text = sqlite3_column_text(stmt_, i);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
}

bool Statement::ColumnIsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = DbError(db, rc, absl::StrCat("job store '", path, "': cannot open"));
    sqlite3_close_v2(db);
    return absl::FailedPreconditionError(status.message());
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Database>(new Database(db, path));
}

Database::~Database() { sqlite3_close_v2(db_); }

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  std::string head(sql.substr(0, 60));
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return DbError(db_, rc, absl::StrCat("SQLite prepare (", head, ")"));
  }
  if (stmt == nullptr) return absl::InternalError(absl::StrCat("SQLite: empty statement ", head));
  return Statement(db_, stmt, std::move(head));
}

absl::Status Database::Exec(absl::string_view sql) {
  // sqlite3_exec runs every statement in the text (the schema is several).
  std::string text(sql);
  char* message = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string msg = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  return ErrorFromCode(rc, absl::StrCat("SQLite (", text.substr(0, 60), ")"), msg);
}

absl::StatusOr<std::string> Database::QueryText(absl::string_view sql) {
  absl::StatusOr<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? stmt->ColumnText(0) : std::string();
}

absl::Status Database::Transaction(bool write, const std::function<absl::Status()>& body) {
  absl::Status status = Exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
  if (!status.ok()) return status;
  status = body();
  if (status.ok()) status = Exec("COMMIT");
  // After a failed COMMIT the transaction may still be open: roll it back too.
  if (!status.ok() && !sqlite3_get_autocommit(db_)) Exec("ROLLBACK").IgnoreError();
  return status;
}

}  // namespace signround::jobs::sqlite
