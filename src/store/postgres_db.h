// The PostgreSQL backend of sql::Database (sql_db.h), over libpq: one connection per
// Database, `?` parameters rewritten to $1, $2, ... and sent separately from the SQL text
// (text format), libpq's errors turned into absl::Status by SQLSTATE, and reconnection
// (PQreset) when the connection was lost between transactions.
//
// Thread-safety: a Database and its Statements are one libpq connection and must not be
// used from two threads at once; callers serialize (the job store holds its own mutex).
// Statements must not outlive their Database.
//
// Parameters: Int binds int8 and Real binds float8 (formatted with 17 significant digits,
// so every double round-trips; infinities as "Infinity"); Text and Null are sent untyped, so
// the server infers their type from the context (text, jsonb, ...). Text must not contain
// NUL bytes (Postgres cannot store them): Step returns INVALID_ARGUMENT.
//
// Errors read "postgres HOST:PORT/DB (<start of the SQL>): <the server's message>". The
// password is never in a message nor in Describe(), and neither is the URL.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/store/sql_db.h"

namespace signround::jobs {

// Connects to a `postgres://` or `postgresql://` URI as libpq accepts it
// (postgresql://user:password@host:port/dbname?param=value...); libpq also reads PGPASSWORD,
// PGPASSFILE, PGSSLMODE, ... from the environment. connect_timeout=10,
// application_name=signround and TCP keepalives after 30 s idle (10 s apart, 3 probes) unless
// the URL or the environment (PGCONNECT_TIMEOUT, PGAPPNAME) say otherwise;
// client_encoding=UTF8 always. After connecting (and after every reconnect):
// SET client_min_messages = warning; notices are dropped rather than printed on stderr.
//
// Errors: INVALID_ARGUMENT for a malformed URL or a bad option value; FAILED_PRECONDITION when
// the server refuses (authentication, no such database or role); RESOURCE_EXHAUSTED for too
// many connections; UNAVAILABLE when it cannot be reached (or is starting up / shutting down).
absl::StatusOr<std::unique_ptr<sql::Database>> OpenPostgres(const std::string& url);

// Whether `url` itself holds a password: in its user info ("user:PASSWORD@", even an
// empty one) or as a password / sslpassword parameter.
bool PostgresUrlHasPassword(const std::string& url);

namespace postgres_internal {

// The status code for a SQLSTATE: 40001/40P01 ABORTED; 23505 ALREADY_EXISTS, other 23xxx
// FAILED_PRECONDITION; 08xxx (but 08P01, a protocol violation) and 57P01-57P03 (shutdown,
// starting up) UNAVAILABLE; 53xxx RESOURCE_EXHAUSTED; 57014 CANCELLED; 3D000 and 28xxx
// FAILED_PRECONDITION; anything else INTERNAL.
absl::StatusCode CodeForSqlState(absl::string_view sqlstate);

// A float8 parameter's text: 17 significant digits ("-0", "0.10000000000000001"),
// "Infinity", "-Infinity", "NaN".
std::string FormatReal(double value);

// A column's text as a number: Postgres' float8 output ("NaN", "Infinity", "-Infinity",
// exponents), integers, and booleans ("t" 1, "f" 0). Anything else reads 0.
double ParseReal(absl::string_view text);
// Integers exactly; reals truncated toward zero and clamped to the int64 range (NaN 0);
// booleans 1/0; anything else 0.
int64_t ParseInt(absl::string_view text);

// Removes what could carry credentials from one of libpq's messages: every occurrence of
// `secrets` (the URL, the raw and decoded password) of 4 bytes or more is replaced by "***";
// the lines are trimmed and joined into one.
std::string ScrubMessage(absl::string_view message, const std::vector<std::string>& secrets);

}  // namespace postgres_internal
}  // namespace signround::jobs
