#include "src/store/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace signround::jobs {
namespace sqlite {

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

}  // namespace sqlite
namespace {

absl::Status DbError(sqlite3* db, int rc, absl::string_view what) {
  return sqlite::ErrorFromCode(rc, what, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

class SqliteCursor : public sql::Cursor {
 public:
  SqliteCursor(sqlite3* db, sqlite3_stmt* stmt, std::string sql_head)
      : db_(db), stmt_(stmt), sql_head_(std::move(sql_head)) {}
  ~SqliteCursor() override { sqlite3_finalize(stmt_); }

  absl::StatusOr<bool> Step(const std::vector<sql::Param>& params) override {
    if (!bound_) {
      bound_ = true;
      for (size_t i = 0; i < params.size(); ++i) {
        int rc = Bind(static_cast<int>(i) + 1, params[i]);
        if (rc != SQLITE_OK) return DbError(db_, rc, absl::StrCat("SQLite bind (", sql_head_, ")"));
      }
    }
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return DbError(db_, rc, absl::StrCat("SQLite (", sql_head_, ")"));
  }

  int64_t ColumnInt(int i) const override { return sqlite3_column_int64(stmt_, i); }
  double ColumnReal(int i) const override { return sqlite3_column_double(stmt_, i); }
  std::string ColumnText(int i) const override {
    const unsigned char* text = sqlite3_column_text(stmt_, i);
    if (text == nullptr) return "";
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  bool ColumnIsNull(int i) const override { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

 private:
  int Bind(int index, const sql::Param& p) {
    switch (p.kind) {
      case sql::Param::Kind::kInt:
        return sqlite3_bind_int64(stmt_, index, p.int_value);
      case sql::Param::Kind::kReal:
        return sqlite3_bind_double(stmt_, index, p.real_value);
      case sql::Param::Kind::kText:
        return sqlite3_bind_text64(stmt_, index, p.text.data(), p.text.size(), SQLITE_TRANSIENT,
                                   SQLITE_UTF8);
      case sql::Param::Kind::kNull:
        break;
    }
    return sqlite3_bind_null(stmt_, index);
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string sql_head_;  // the start of the SQL text, for error messages
  bool bound_ = false;
};

class SqliteDatabase : public sql::Database {
 public:
  SqliteDatabase(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteDatabase() override { sqlite3_close_v2(db_); }

  sql::Dialect dialect() const override { return sql::Dialect::kSqlite; }
  std::string Describe() const override { return path_; }

  absl::StatusOr<sql::Statement> Prepare(absl::string_view sql) override {
    sqlite3_stmt* stmt = nullptr;
    std::string head(sql.substr(0, 60));
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return DbError(db_, rc, absl::StrCat("SQLite prepare (", head, ")"));
    }
    if (stmt == nullptr) return absl::InternalError(absl::StrCat("SQLite: empty statement ", head));
    return sql::Statement(std::make_unique<SqliteCursor>(db_, stmt, std::move(head)));
  }

  absl::Status Exec(absl::string_view sql) override {
    // sqlite3_exec runs every statement in the text (a schema is several).
    std::string text(sql);
    char* message = nullptr;
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return absl::OkStatus();
    std::string msg = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return sqlite::ErrorFromCode(rc, absl::StrCat("SQLite (", text.substr(0, 60), ")"), msg);
  }

  absl::Status Transaction(bool write, const std::function<absl::Status()>& body) override {
    absl::Status status = Exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
    if (!status.ok()) return status;
    status = body();
    if (status.ok()) status = Exec("COMMIT");
    // After a failed COMMIT the transaction may still be open: roll it back too.
    if (!status.ok() && !sqlite3_get_autocommit(db_)) Exec("ROLLBACK").IgnoreError();
    return status;
  }

 private:
  sqlite3* db_;
  std::string path_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<sql::Database>> OpenSqlite(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = DbError(db, rc, absl::StrCat("job store '", path, "': cannot open"));
    sqlite3_close_v2(db);
    return absl::FailedPreconditionError(status.message());
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<sql::Database>(new SqliteDatabase(db, path));
}

}  // namespace signround::jobs
