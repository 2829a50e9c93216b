#include "src/store/postgres_db.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "src/common/status_macros.h"

namespace signround::jobs {
namespace postgres_internal {

absl::StatusCode CodeForSqlState(absl::string_view s) {
  if (s == "40001" || s == "40P01") return absl::StatusCode::kAborted;
  if (absl::StartsWith(s, "23")) {
    return s == "23505" ? absl::StatusCode::kAlreadyExists : absl::StatusCode::kFailedPrecondition;
  }
  // A protocol violation (e.g. a wrong parameter count) is a bug, not a network problem.
  if (s == "08P01") return absl::StatusCode::kInternal;
  if (absl::StartsWith(s, "08")) return absl::StatusCode::kUnavailable;
  // Shutting down, crashed, starting up: the connection is gone, a retry can succeed.
  if (s == "57P01" || s == "57P02" || s == "57P03") return absl::StatusCode::kUnavailable;
  if (absl::StartsWith(s, "53")) return absl::StatusCode::kResourceExhausted;
  if (s == "57014") return absl::StatusCode::kCancelled;
  if (s == "3D000" || absl::StartsWith(s, "28")) return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kInternal;
}

std::string FormatReal(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value < 0 ? "-Infinity" : "Infinity";
  // The shortest text that parses back to the same double (at most 17 significant digits),
  // independent of the locale.
  char buf[64];
  std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

double ParseReal(absl::string_view text) {
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "Infinity") return std::numeric_limits<double>::infinity();
  if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  if (text == "t") return 1;
  if (text == "f") return 0;
  double value = 0;
  return absl::SimpleAtod(text, &value) ? value : 0;
}

int64_t ParseInt(absl::string_view text) {
  int64_t value = 0;
  if (absl::SimpleAtoi(text, &value)) return value;
  const double real = ParseReal(text);
  if (std::isnan(real)) return 0;
  // 2^63 is exactly representable; anything at or beyond it clamps.
  constexpr double kLimit = 9223372036854775808.0;
  if (real >= kLimit) return std::numeric_limits<int64_t>::max();
  if (real <= -kLimit) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(real);
}

// libpq never puts a password into its messages; scrubbing is a second line of defence.
// Shorter secrets would garble every message they occur in by chance ("p" in "port").
constexpr size_t kMinSecretBytes = 4;

std::string ScrubMessage(absl::string_view message, const std::vector<std::string>& secrets) {
  std::string text(message);
  std::vector<std::string> sorted = secrets;  // longest first: the URL before its password
  std::sort(sorted.begin(), sorted.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& secret : sorted) {
    if (secret.size() >= kMinSecretBytes) absl::StrReplaceAll({{secret, "***"}}, &text);
  }
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) lines.push_back(line);
  }
  return absl::StrJoin(lines, " ");
}

}  // namespace postgres_internal

namespace {

using postgres_internal::ScrubMessage;

constexpr Oid kInt8Oid = 20;
constexpr Oid kFloat8Oid = 701;
constexpr size_t kSqlHeadBytes = 60;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// The start of `sql` on one line, for messages: whitespace runs collapsed, at most 60 bytes
// (not splitting a UTF-8 sequence), "..." when cut.
std::string SqlHead(absl::string_view sql) {
  std::string head;
  for (absl::string_view word :
       absl::StrSplit(sql, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty())) {
    if (!head.empty()) head.push_back(' ');
    absl::StrAppend(&head, word);
    if (head.size() > kSqlHeadBytes) break;
  }
  if (head.size() <= kSqlHeadBytes) return head;
  size_t cut = kSqlHeadBytes;
  while (cut > 0 && (static_cast<unsigned char>(head[cut]) & 0xC0) == 0x80) --cut;
  head.resize(cut);
  return head + "...";
}

// "host:port/dbname" of a connection (also of one that failed).
std::string Where(const PGconn* conn) {
  auto str = [](const char* s) { return std::string(s != nullptr ? s : ""); };
  std::string host = str(PQhost(conn));
  return absl::StrCat(host.empty() ? "localhost" : host, ":", str(PQport(conn)), "/",
                      str(PQdb(conn)));
}

// The password as written in the URL's user info (still percent-encoded; "" for
// "user:@"), or nullopt when the user info has none.
std::optional<std::string> RawUrlPassword(absl::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = url.substr(scheme + 3);
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  size_t at = authority.rfind('@');
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view user_info = authority.substr(0, at);
  size_t colon = user_info.find(':');
  if (colon == absl::string_view::npos) return std::nullopt;
  return std::string(user_info.substr(colon + 1));
}

// The code for a connection that failed: libpq gives no SQLSTATE for it, so this reads its
// message. A refusal by the server (FATAL) is a configuration problem unless it is about
// capacity or the server's state; no answer at all is UNAVAILABLE.
absl::StatusCode ConnectFailureCode(const PGconn* conn, absl::string_view message) {
  if (PQconnectionNeedsPassword(conn)) return absl::StatusCode::kFailedPrecondition;
  // libpq's checks of the URL's option values ("invalid sslmode value: ...").
  if (absl::StartsWith(message, "invalid ")) return absl::StatusCode::kInvalidArgument;
  if (!absl::StrContains(message, "FATAL:")) return absl::StatusCode::kUnavailable;
  for (absl::string_view busy : {"too many clients", "remaining connection slots"}) {
    if (absl::StrContains(message, busy)) return absl::StatusCode::kResourceExhausted;
  }
  for (absl::string_view state : {"starting up", "shutting down", "in recovery",
                                  "not yet accepting", "not accepting connections"}) {
    if (absl::StrContains(message, state)) return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kFailedPrecondition;
}

// libpq's URL parse errors quote the offending part of the URL, which may be a password
// (in the user info or a query parameter): every quoted part longer than one character goes.
std::string WithoutQuotedParts(absl::string_view message) {
  std::string out;
  while (!message.empty()) {
    const size_t open = message.find('"');
    if (open == absl::string_view::npos) {
      absl::StrAppend(&out, message);
      break;
    }
    const size_t close = message.find('"', open + 1);
    absl::StrAppend(&out, message.substr(0, open));
    if (close == absl::string_view::npos) break;  // unbalanced: drop the rest
    absl::string_view quoted = message.substr(open, close - open + 1);
    absl::StrAppend(&out, quoted.size() > 3 ? absl::string_view("\"***\"") : quoted);
    message.remove_prefix(close + 1);
  }
  return out;
}

void DropNotice(void* /*arg*/, const char* /*message*/) {}

// Ends a COPY that a statement started (COPY is not supported) and reads the connection
// back to idle.
void AbandonCopy(PGconn* conn, ExecStatusType status) {
  if (status == PGRES_COPY_IN) PQputCopyEnd(conn, "COPY FROM STDIN is not supported");
  if (status == PGRES_COPY_OUT) {
    char* buf = nullptr;
    while (PQgetCopyData(conn, &buf, 0) > 0) PQfreemem(buf);
  }
  while (PGresult* r = PQgetResult(conn)) PQclear(r);
}

class PgDatabase final : public sql::Database {
 public:
  PgDatabase(PGconn* conn, std::vector<std::string> secrets)
      : conn_(conn), where_(Where(conn)), secrets_(std::move(secrets)) {}
  ~PgDatabase() override { PQfinish(conn_); }
  PgDatabase(const PgDatabase&) = delete;
  PgDatabase& operator=(const PgDatabase&) = delete;

  sql::Dialect dialect() const override { return sql::Dialect::kPostgres; }
  std::string Describe() const override { return where_; }
  absl::StatusOr<sql::Statement> Prepare(absl::string_view sql) override;
  absl::Status Exec(absl::string_view sql) override;
  absl::Status Transaction(bool write, const std::function<absl::Status()>& body) override;

  PGconn* conn() const { return conn_; }
  // SET client_min_messages, and notices dropped.
  absl::Status Configure();
  // PQreset when the connection is bad, except inside Transaction (the transaction is lost:
  // its statements must fail rather than run outside it).
  absl::Status ReconnectIfLost();
  // "postgres WHERE (SQL): message" with the code of the result's SQLSTATE.
  absl::Status Error(absl::string_view sql_head, const PGresult* result) const;
  absl::Status Invalid(absl::string_view sql_head, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("postgres ", where_, " (", sql_head, "): ", what));
  }
  // Checks the result of a statement run for its effect (no rows wanted).
  absl::Status CheckResult(absl::string_view sql_head, PGresult* result) const;

 private:
  absl::Status Commit();

  PGconn* conn_;
  std::string where_;
  std::vector<std::string> secrets_;  // never in a message
  bool in_transaction_ = false;
};

class PgCursor final : public sql::Cursor {
 public:
  PgCursor(PgDatabase* db, std::string sql, size_t num_params, std::string sql_head)
      : db_(db), sql_(std::move(sql)), num_params_(num_params), sql_head_(std::move(sql_head)) {}

  absl::StatusOr<bool> Step(const std::vector<sql::Param>& params) override {
    if (!executed_) {
      executed_ = true;
      status_ = Execute(params);
    }
    if (!status_.ok()) return status_;
    if (row_ + 1 >= rows_) {
      row_ = rows_;
      return false;
    }
    ++row_;
    return true;
  }
  int64_t ColumnInt(int i) const override {
    const char* v = Value(i);
    return v == nullptr ? 0 : postgres_internal::ParseInt(v);
  }
  double ColumnReal(int i) const override {
    const char* v = Value(i);
    return v == nullptr ? 0 : postgres_internal::ParseReal(v);
  }
  std::string ColumnText(int i) const override {
    const char* v = Value(i);
    return v == nullptr ? std::string() : std::string(v, PQgetlength(result_.get(), row_, i));
  }
  bool ColumnIsNull(int i) const override { return Value(i) == nullptr; }

 private:
  absl::Status Execute(const std::vector<sql::Param>& params);
  // The current row's column i, or nullptr when NULL or out of range.
  const char* Value(int i) const {
    if (result_ == nullptr || row_ < 0 || row_ >= rows_ || i < 0 || i >= PQnfields(result_.get()) ||
        PQgetisnull(result_.get(), row_, i)) {
      return nullptr;
    }
    return PQgetvalue(result_.get(), row_, i);
  }

  PgDatabase* db_;
  std::string sql_;
  size_t num_params_;
  std::string sql_head_;
  bool executed_ = false;
  absl::Status status_;
  ResultPtr result_;
  int rows_ = 0;
  int row_ = -1;
};

absl::Status PgCursor::Execute(const std::vector<sql::Param>& params) {
  if (params.size() != num_params_) {
    return db_->Invalid(sql_head_, absl::StrCat("the SQL has ", num_params_, " parameters, ",
                                                params.size(), " bound"));
  }
  std::vector<std::string> texts(params.size());
  std::vector<const char*> values(params.size(), nullptr);
  std::vector<Oid> types(params.size(), 0);
  for (size_t i = 0; i < params.size(); ++i) {
    const sql::Param& p = params[i];
    switch (p.kind) {
      case sql::Param::Kind::kNull:
        continue;
      case sql::Param::Kind::kInt:
        texts[i] = absl::StrCat(p.int_value);
        types[i] = kInt8Oid;
        break;
      case sql::Param::Kind::kReal:
        texts[i] = postgres_internal::FormatReal(p.real_value);
        types[i] = kFloat8Oid;
        break;
      case sql::Param::Kind::kText:
        if (p.text.find('\0') != std::string::npos) {
          return db_->Invalid(sql_head_, absl::StrCat("parameter ", i + 1, " contains a NUL byte"));
        }
        texts[i] = p.text;
        break;
    }
    values[i] = texts[i].c_str();
  }
  SR_RETURN_IF_ERROR(db_->ReconnectIfLost());
  result_.reset(PQexecParams(db_->conn(), sql_.c_str(), static_cast<int>(params.size()),
                             types.data(), values.data(), nullptr, nullptr, 0));
  const ExecStatusType status = PQresultStatus(result_.get());
  rows_ = status == PGRES_TUPLES_OK ? PQntuples(result_.get()) : 0;
  return db_->CheckResult(sql_head_, result_.get());
}

absl::Status PgDatabase::Configure() {
  PQsetNoticeProcessor(conn_, DropNotice, nullptr);
  static constexpr char kSettings[] = "SET client_min_messages = warning";
  ResultPtr result(PQexec(conn_, kSettings));
  return CheckResult(kSettings, result.get());
}

absl::Status PgDatabase::ReconnectIfLost() {
  if (in_transaction_ || PQstatus(conn_) != CONNECTION_BAD) return absl::OkStatus();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = ScrubMessage(PQerrorMessage(conn_), secrets_);
    return absl::Status(ConnectFailureCode(conn_, message),
                        absl::StrCat("postgres ", where_, ": reconnecting: ", message));
  }
  return Configure();
}

absl::Status PgDatabase::Error(absl::string_view sql_head, const PGresult* result) const {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string message;
  if (primary != nullptr && *primary != '\0') {
    message = primary;
  } else {
    // libpq's own errors (connection lost, out of memory) may lack the fields.
    const char* text = result ? PQresultErrorMessage(result) : "";
    message = (text != nullptr && *text != '\0') ? text : PQerrorMessage(conn_);
    for (absl::string_view prefix : {"ERROR:", "FATAL:"}) {
      if (absl::StartsWith(message, prefix)) message.erase(0, prefix.size());
    }
  }
  absl::StatusCode code = absl::StatusCode::kInternal;
  if (state != nullptr && *state != '\0') code = postgres_internal::CodeForSqlState(state);
  if (code == absl::StatusCode::kInternal && PQstatus(conn_) == CONNECTION_BAD) {
    code = absl::StatusCode::kUnavailable;
  }
  if (message.empty()) message = "unknown error";
  return absl::Status(code, absl::StrCat("postgres ", where_, " (", sql_head,
                                         "): ", ScrubMessage(message, secrets_)));
}

absl::Status PgDatabase::CheckResult(absl::string_view sql_head, PGresult* result) const {
  const ExecStatusType status = PQresultStatus(result);
  switch (status) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
    case PGRES_EMPTY_QUERY:
      return absl::OkStatus();
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      AbandonCopy(conn_, status);
      return Invalid(sql_head, "COPY is not supported");
    default:
      return Error(sql_head, result);
  }
}

absl::StatusOr<sql::Statement> PgDatabase::Prepare(absl::string_view sql) {
  std::string head = SqlHead(sql);
  if (sql.find('\0') != absl::string_view::npos) return Invalid(head, "NUL byte in the SQL");
  std::string numbered = sql::NumberPlaceholders(sql);
  // NumberPlaceholders adds one '$' per parameter and nothing else.
  const size_t num_params =
      std::count(numbered.begin(), numbered.end(), '$') - std::count(sql.begin(), sql.end(), '$');
  return sql::Statement(
      std::make_unique<PgCursor>(this, std::move(numbered), num_params, std::move(head)));
}

absl::Status PgDatabase::Exec(absl::string_view sql) {
  std::string head = SqlHead(sql);
  if (sql.find('\0') != absl::string_view::npos) return Invalid(head, "NUL byte in the SQL");
  SR_RETURN_IF_ERROR(ReconnectIfLost());
  ResultPtr result(PQexec(conn_, std::string(sql).c_str()));
  return CheckResult(head, result.get());
}

absl::Status PgDatabase::Commit() {
  ResultPtr result(PQexec(conn_, "COMMIT"));
  SR_RETURN_IF_ERROR(CheckResult("COMMIT", result.get()));
  // COMMIT of a transaction in which a statement failed rolls back and says so.
  if (absl::string_view(PQcmdStatus(result.get())) == "ROLLBACK") {
    return absl::AbortedError(
        absl::StrCat("postgres ", where_,
                     " (COMMIT): the transaction was rolled back: a statement in it failed"));
  }
  return absl::OkStatus();
}

absl::Status PgDatabase::Transaction(bool /*write*/, const std::function<absl::Status()>& body) {
  const PGTransactionStatusType before = PQtransactionStatus(conn_);
  if (in_transaction_ || before == PQTRANS_INTRANS || before == PQTRANS_INERROR) {
    return absl::FailedPreconditionError(
        absl::StrCat("postgres ", where_, ": a transaction is already open"));
  }
  absl::Status begun = Exec("BEGIN");
  // A connection the server dropped since the last use (a restart) only shows as bad once a
  // command fails: reconnect and begin again (BEGIN itself did nothing).
  if (!begun.ok() && PQstatus(conn_) == CONNECTION_BAD) begun = Exec("BEGIN");
  SR_RETURN_IF_ERROR(begun);
  in_transaction_ = true;
  absl::Cleanup done = [this] { in_transaction_ = false; };
  absl::Status status = body();
  if (status.ok()) status = Commit();
  const PGTransactionStatusType after = PQtransactionStatus(conn_);
  if (!status.ok() && (after == PQTRANS_INTRANS || after == PQTRANS_INERROR)) {
    ResultPtr(PQexec(conn_, "ROLLBACK"));
  }
  return status;
}

}  // namespace

bool PostgresUrlHasPassword(const std::string& url) {
  if (RawUrlPassword(url)) return true;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), nullptr);
  if (options == nullptr) return absl::StrContains(url, "password=");  // unparsable: be safe
  bool found = false;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    const absl::string_view keyword = o->keyword;
    if (o->val != nullptr && (keyword == "password" || keyword == "sslpassword")) found = true;
  }
  PQconninfoFree(options);
  return found;
}

absl::StatusOr<std::unique_ptr<sql::Database>> OpenPostgres(const std::string& url) {
  if (!absl::StartsWith(url, "postgres://") && !absl::StartsWith(url, "postgresql://")) {
    return absl::InvalidArgumentError(
        "postgres: the store URL must start with postgres:// or postgresql://");
  }
  std::vector<std::string> secrets = {url, RawUrlPassword(url).value_or("")};
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
  if (options == nullptr) {
    std::string why =
        parse_error ? ScrubMessage(WithoutQuotedParts(parse_error), secrets) : "out of memory";
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(absl::StrCat("postgres: malformed URL: ", why));
  }
  bool has_timeout = std::getenv("PGCONNECT_TIMEOUT") != nullptr;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const absl::string_view keyword = o->keyword;
    if (keyword == "connect_timeout") has_timeout = true;
    if (keyword == "password") secrets.push_back(o->val);
  }
  PQconninfoFree(options);

  // Earlier entries are defaults that the URL (expanded at "dbname") overrides; later ones
  // are forced.
  std::vector<const char*> keys, values;
  if (!has_timeout) {
    keys.push_back("connect_timeout");
    values.push_back("10");
  }
  // TCP keepalives: a peer gone without a word (a network cut) fails the connection within
  // about a minute instead of the kernel's two hours.
  for (auto [key, value] :
       {std::pair{"fallback_application_name", "signround"}, std::pair{"keepalives_idle", "30"},
        std::pair{"keepalives_interval", "10"}, std::pair{"keepalives_count", "3"},
        std::pair{"dbname", url.c_str()}, std::pair{"client_encoding", "UTF8"}}) {
    keys.push_back(key);
    values.push_back(value);
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("postgres: out of memory");
  // Also a password from PGPASSWORD or the password file.
  if (const char* password = PQpass(conn); password != nullptr) secrets.push_back(password);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = ScrubMessage(PQerrorMessage(conn), secrets);
    absl::Status status(ConnectFailureCode(conn, message),
                        absl::StrCat("postgres ", Where(conn), ": cannot connect: ", message));
    PQfinish(conn);
    return status;
  }
  auto db = std::make_unique<PgDatabase>(conn, std::move(secrets));
  SR_RETURN_IF_ERROR(db->Configure());
  return db;
}

}  // namespace signround::jobs
