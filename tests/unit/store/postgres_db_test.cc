// The PostgreSQL backend of sql::Database against a real server on loopback
// (tests/testing/postgres_server.h; skipped where Postgres is not installed): parameters and
// rows, transactions, SQLSTATEs as status codes, credentials kept out of messages,
// SKIP LOCKED across connections, reconnection after a server restart. Also the parts that
// need no server: sql::NumberPlaceholders, the SQLSTATE table, number text.
#include "src/store/postgres_db.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres_server.h"

namespace signround::jobs {
namespace {

using ::signround::testing::PostgresAvailable;
using ::signround::testing::PostgresTestServer;
using sql::NumberPlaceholders;

TEST(NumberPlaceholdersTest, NumbersEachPlaceholderInOrder) {
  EXPECT_EQ(NumberPlaceholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)");
  EXPECT_EQ(NumberPlaceholders("INSERT INTO t VALUES(?,?)"), "INSERT INTO t VALUES($1,$2)");
  EXPECT_EQ(NumberPlaceholders("SELECT 1"), "SELECT 1");
  EXPECT_EQ(NumberPlaceholders(""), "");
  EXPECT_EQ(NumberPlaceholders("?"), "$1");
}

TEST(NumberPlaceholdersTest, LeavesQuotedStringsAndIdentifiersAlone) {
  EXPECT_EQ(NumberPlaceholders("SELECT 'a?b', ?"), "SELECT 'a?b', $1");
  EXPECT_EQ(NumberPlaceholders("SELECT \"col?\" FROM t WHERE x = ?"),
            "SELECT \"col?\" FROM t WHERE x = $1");
  // A doubled quote inside a literal closes and reopens it: still inside.
  EXPECT_EQ(NumberPlaceholders("SELECT 'it''s ?', ?"), "SELECT 'it''s ?', $1");
  EXPECT_EQ(NumberPlaceholders("SELECT '\"?', ?, \"'?\""), "SELECT '\"?', $1, \"'?\"");
  EXPECT_EQ(NumberPlaceholders("SELECT '?"), "SELECT '?");  // unterminated: all quoted
}

TEST(PostgresInternalTest, SqlStateCodes) {
  using postgres_internal::CodeForSqlState;
  EXPECT_EQ(CodeForSqlState("40001"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeForSqlState("40P01"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeForSqlState("23505"), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeForSqlState("23503"), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForSqlState("23502"), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForSqlState("08006"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("08P01"), absl::StatusCode::kInternal);
  EXPECT_EQ(CodeForSqlState("57P01"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("53300"), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeForSqlState("57014"), absl::StatusCode::kCancelled);
  EXPECT_EQ(CodeForSqlState("3D000"), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForSqlState("28P01"), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForSqlState("42601"), absl::StatusCode::kInternal);
  EXPECT_EQ(CodeForSqlState(""), absl::StatusCode::kInternal);
}

TEST(PostgresInternalTest, RealsRoundTripThroughText) {
  using postgres_internal::FormatReal;
  using postgres_internal::ParseReal;
  for (double v : {0.1, 1.0 / 3, -2.5e-300, 5e-324, std::numeric_limits<double>::max(),
                   std::numeric_limits<double>::lowest(), 123456789.0, 0.0}) {
    EXPECT_EQ(ParseReal(FormatReal(v)), v) << FormatReal(v);
  }
  EXPECT_EQ(FormatReal(-0.0), "-0");
  EXPECT_TRUE(std::signbit(ParseReal("-0")));
  EXPECT_EQ(FormatReal(std::numeric_limits<double>::infinity()), "Infinity");
  EXPECT_EQ(FormatReal(-std::numeric_limits<double>::infinity()), "-Infinity");
  EXPECT_EQ(FormatReal(std::nan("")), "NaN");
  EXPECT_TRUE(std::isnan(ParseReal("NaN")));
  EXPECT_EQ(ParseReal("-Infinity"), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(ParseReal("1e+300"), 1e300);
  EXPECT_EQ(ParseReal("t"), 1);
  EXPECT_EQ(ParseReal("garbage"), 0);
}

TEST(PostgresInternalTest, IntsFromText) {
  using postgres_internal::ParseInt;
  EXPECT_EQ(ParseInt("-9223372036854775808"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(ParseInt("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseInt("99999999999999999999"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseInt("-2.9"), -2);
  EXPECT_EQ(ParseInt("NaN"), 0);
  EXPECT_EQ(ParseInt("-Infinity"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(ParseInt("t"), 1);
  EXPECT_EQ(ParseInt("f"), 0);
  EXPECT_EQ(ParseInt(""), 0);
}

TEST(PostgresInternalTest, ScrubRemovesSecretsAndJoinsLines) {
  EXPECT_EQ(postgres_internal::ScrubMessage("bad \"pg://u:hunter2@h\"\n\tsee hunter2\n",
                                            {"pg://u:hunter2@h", "hunter2", ""}),
            "bad \"***\" see ***");
  // Too short to scrub without garbling: libpq does not echo passwords anyway.
  EXPECT_EQ(postgres_internal::ScrubMessage("bad port", {"p"}), "bad port");
}

// signround-server refuses a --store URL that holds a password (argv is public).
TEST(PostgresUrlHasPasswordTest, UserInfoAndParameters) {
  EXPECT_TRUE(PostgresUrlHasPassword("postgres://u:secret@db:5432/jobs"));
  EXPECT_TRUE(PostgresUrlHasPassword("postgresql://u:@db/jobs")) << "even an empty one";
  EXPECT_TRUE(PostgresUrlHasPassword("postgres://u@db/jobs?password=secret"));
  EXPECT_TRUE(PostgresUrlHasPassword("postgres://u@db/jobs?sslmode=require&sslpassword=k"));
  EXPECT_TRUE(PostgresUrlHasPassword("postgres://u@db/jobs?password=x&bogus_param=1"))
      << "a URL libpq cannot parse is judged by its text";
  EXPECT_FALSE(PostgresUrlHasPassword("postgres://u@db:5432/jobs"));
  EXPECT_FALSE(PostgresUrlHasPassword("postgres://db/jobs?sslmode=require"));
  EXPECT_FALSE(PostgresUrlHasPassword("postgres://u@db/p:w@x"))
      << "a ':' after the authority is not user info";
}

TEST(OpenPostgresTest, RejectsOtherSchemesWithoutEchoingTheUrl) {
  absl::StatusOr<std::unique_ptr<sql::Database>> db =
      OpenPostgres("mysql://user:hunter2@localhost/db");
  EXPECT_EQ(db.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(db.status().message(), "hunter2")) << db.status();
}

TEST(OpenPostgresTest, MalformedUrlKeepsThePasswordOut) {
  absl::StatusOr<std::unique_ptr<sql::Database>> db =
      OpenPostgres("postgresql://user:hun%zzter2@localhost/db");
  EXPECT_EQ(db.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(db.status().message(), "malformed URL")) << db.status();
  EXPECT_FALSE(absl::StrContains(db.status().message(), "hun")) << db.status();
  db = OpenPostgres("postgresql://localhost/db?password=%zzhunter2");
  EXPECT_EQ(db.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(db.status().message(), "hunter2")) << db.status();
  db = OpenPostgres("postgresql://user:hunter2@localhost/db?sslmode=bogus");
  EXPECT_EQ(db.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(db.status().message(), "sslmode")) << db.status();
  EXPECT_FALSE(absl::StrContains(db.status().message(), "hunter2")) << db.status();
}

TEST(OpenPostgresTest, UnreachablePortIsUnavailable) {
  // Port 1 on loopback: nothing listens there (and connecting needs no privilege).
  absl::StatusOr<std::unique_ptr<sql::Database>> db =
      OpenPostgres("postgresql://signround:hunter2@127.0.0.1:1/jobs?connect_timeout=3");
  ASSERT_EQ(db.status().code(), absl::StatusCode::kUnavailable) << db.status();
  EXPECT_TRUE(absl::StrContains(db.status().message(), "postgres 127.0.0.1:1/jobs")) << db.status();
  EXPECT_FALSE(absl::StrContains(db.status().message(), "hunter2")) << db.status();
}

class PostgresDbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!PostgresAvailable(&skip_reason_)) return;
    server_ = new PostgresTestServer;
    start_status_ = server_->Start();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(start_status_.ok()) << start_status_;
    std::string name = absl::AsciiStrToLower(
        absl::StrCat("t_", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    absl::StatusOr<std::string> url = server_->CreateDatabase(name.substr(0, 63));
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    db_ = Open();
    ASSERT_NE(db_, nullptr);
  }

  std::unique_ptr<sql::Database> Open() {
    absl::StatusOr<std::unique_ptr<sql::Database>> db = OpenPostgres(url_);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? *std::move(db) : nullptr;
  }
  void Exec(sql::Database& db, absl::string_view sql) {
    absl::Status status = db.Exec(sql);
    ASSERT_TRUE(status.ok()) << status;
  }
  std::string Query(sql::Database& db, absl::string_view sql) {
    absl::StatusOr<std::string> text = db.QueryText(sql);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.value_or("<error>");
  }

  static inline PostgresTestServer* server_ = nullptr;
  static inline absl::Status start_status_;
  static inline std::string skip_reason_;
  std::string url_;
  std::unique_ptr<sql::Database> db_;
};

TEST_F(PostgresDbTest, DescribesWhereWithoutThePassword) {
  EXPECT_EQ(db_->dialect(), sql::Dialect::kPostgres);
  EXPECT_EQ(db_->Describe(),
            absl::StrCat("127.0.0.1:", server_->port(), "/t_describeswherewithoutthepassword"));
  EXPECT_EQ(Query(*db_, "SHOW application_name"), "signround");
  EXPECT_EQ(Query(*db_, "SHOW client_min_messages"), "warning");
  EXPECT_EQ(Query(*db_, "SHOW client_encoding"), "UTF8");
}

TEST_F(PostgresDbTest, ParametersRoundTrip) {
  Exec(*db_, "CREATE TABLE t (k int PRIMARY KEY, i bigint, r double precision, s text)");
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::string kQuotes = "it's \"quoted\" \\ back'slash'; --?";
  const std::string kUnicode = "héllo wörld ✓ 𝄞 日本語";
  struct Row {
    int64_t i;
    double r;
    std::string s;
  };
  const std::vector<Row> rows = {{kMin, 0.1, kQuotes},
                                 {kMax, -0.0, kUnicode},
                                 {0, std::numeric_limits<double>::infinity(), "?"},
                                 {-1, 5e-324, ""}};
  for (size_t k = 0; k < rows.size(); ++k) {
    absl::StatusOr<sql::Statement> insert = db_->Prepare("INSERT INTO t VALUES (?, ?, ?, ?)");
    ASSERT_TRUE(insert.ok()) << insert.status();
    insert->Int(k).Int(rows[k].i).Real(rows[k].r).Text(rows[k].s);
    absl::Status run = insert->Run();
    ASSERT_TRUE(run.ok()) << run;
  }
  absl::StatusOr<sql::Statement> select = db_->Prepare("SELECT i, r, s FROM t ORDER BY k");
  ASSERT_TRUE(select.ok()) << select.status();
  for (const Row& row : rows) {
    absl::StatusOr<bool> has_row = select->Step();
    ASSERT_TRUE(has_row.ok() && *has_row) << has_row.status();
    EXPECT_EQ(select->ColumnInt(0), row.i);
    const double r = select->ColumnReal(1);
    EXPECT_EQ(std::memcmp(&r, &row.r, sizeof(r)), 0) << r << " vs " << row.r;  // -0 too
    EXPECT_EQ(select->ColumnText(2), row.s);
    EXPECT_FALSE(select->ColumnIsNull(2));
  }
  absl::StatusOr<bool> end = select->Step();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_FALSE(*end);
}

TEST_F(PostgresDbTest, NullsAndQuestionMarksInLiterals) {
  absl::StatusOr<sql::Statement> s =
      db_->Prepare("SELECT 'what?' AS \"why?\", ?, ?::bigint, ?::text, ?::float8");
  ASSERT_TRUE(s.ok()) << s.status();
  s->Text("x").Null().TextOrNull("").Real(std::nan(""));  // "" and NaN bind NULL
  absl::StatusOr<bool> row = s->Step();
  ASSERT_TRUE(row.ok() && *row) << row.status();
  EXPECT_EQ(s->ColumnText(0), "what?");
  EXPECT_EQ(s->ColumnText(1), "x");
  for (int i = 2; i <= 4; ++i) {
    EXPECT_TRUE(s->ColumnIsNull(i)) << i;
    EXPECT_EQ(s->ColumnText(i), "");
    EXPECT_EQ(s->ColumnInt(i), 0);
  }
  EXPECT_FALSE(s->ColumnIsNull(0));
  EXPECT_TRUE(s->ColumnIsNull(99));  // out of range: no crash
  EXPECT_EQ(s->ColumnText(-1), "");
}

TEST_F(PostgresDbTest, SpecialRealsAndBooleansFromTheServer) {
  absl::StatusOr<sql::Statement> s = db_->Prepare(
      "SELECT 'NaN'::float8, 'Infinity'::float8, '-Infinity'::float8, true, 0.1::float8");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->Step().value_or(false));
  EXPECT_TRUE(std::isnan(s->ColumnReal(0)));
  EXPECT_EQ(s->ColumnReal(1), std::numeric_limits<double>::infinity());
  EXPECT_EQ(s->ColumnReal(2), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(s->ColumnInt(3), 1);
  EXPECT_EQ(s->ColumnReal(4), 0.1);
}

TEST_F(PostgresDbTest, StatementsWithoutRowsAndManyRows) {
  Exec(*db_, "CREATE TABLE q (id bigint PRIMARY KEY, v text); CREATE INDEX ON q (v)");
  for (int i = 1; i <= 5; ++i) {
    absl::StatusOr<sql::Statement> insert = db_->Prepare("INSERT INTO q VALUES (?, ?)");
    ASSERT_TRUE(insert.ok());
    insert->Int(i).Text(absl::StrCat("v", i));
    absl::StatusOr<bool> row = insert->Step();
    ASSERT_TRUE(row.ok()) << row.status();
    EXPECT_FALSE(*row);  // an INSERT has no rows
  }
  absl::StatusOr<sql::Statement> update = db_->Prepare("UPDATE q SET v = v || '!' WHERE id > ?");
  ASSERT_TRUE(update.ok());
  EXPECT_FALSE(update->Int(3).Step().value_or(true));
  absl::StatusOr<sql::Statement> select = db_->Prepare("SELECT id, v FROM q ORDER BY id");
  ASSERT_TRUE(select.ok());
  std::vector<std::string> seen;
  while (select->Step().value_or(false)) {
    seen.push_back(absl::StrCat(select->ColumnInt(0), "=", select->ColumnText(1)));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"1=v1", "2=v2", "3=v3", "4=v4!", "5=v5!"}));
  EXPECT_FALSE(select->Step().value_or(true));  // stays at the end
  EXPECT_EQ(Query(*db_, "SELECT count(*) FROM q WHERE v LIKE '%!'"), "2");
  EXPECT_EQ(Query(*db_, "SELECT v FROM q WHERE id = 42"), "");
}

TEST_F(PostgresDbTest, BadStatementsGivePreciseErrors) {
  absl::StatusOr<sql::Statement> s = db_->Prepare("SELECT ?, ?");
  ASSERT_TRUE(s.ok());
  absl::StatusOr<bool> row = s->Int(1).Step();  // one of two parameters bound
  EXPECT_EQ(row.status().code(), absl::StatusCode::kInvalidArgument) << row.status();
  EXPECT_EQ(s->Step().status(), row.status());  // the error again, not "no rows"

  s = db_->Prepare("SELECT ?");
  ASSERT_TRUE(s.ok());
  row = s->Text(std::string("a\0b", 3)).Step();
  EXPECT_EQ(row.status().code(), absl::StatusCode::kInvalidArgument) << row.status();

  absl::Status bad = db_->Exec("SELEC 1");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(bad.message(), absl::StrCat("postgres ", db_->Describe(),
                                        " (SELEC 1): syntax error at or near \"SELEC\""));
  EXPECT_EQ(db_->Exec("COPY (SELECT 1) TO STDOUT").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Query(*db_, "SELECT 7"), "7");  // the connection is still usable
  Exec(*db_, "SET statement_timeout = 50");
  EXPECT_EQ(db_->Exec("SELECT pg_sleep(2)").code(), absl::StatusCode::kCancelled);
}

TEST_F(PostgresDbTest, TransactionCommitsAndRollsBack) {
  Exec(*db_, "CREATE TABLE t (id bigint PRIMARY KEY)");
  auto insert = [&](int64_t id) -> absl::Status {
    absl::StatusOr<sql::Statement> s = db_->Prepare("INSERT INTO t VALUES (?)");
    if (!s.ok()) return s.status();
    return s->Int(id).Run();
  };
  ASSERT_TRUE(db_->Transaction(true, [&] { return insert(1); }).ok());
  std::unique_ptr<sql::Database> other = Open();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(Query(*other, "SELECT count(*) FROM t"), "1");

  // The body's own error, and its earlier insert is undone.
  absl::Status status = db_->Transaction(true, [&]() -> absl::Status {
    absl::Status s = insert(2);
    return s.ok() ? absl::NotFoundError("body failed") : s;
  });
  EXPECT_EQ(status, absl::NotFoundError("body failed"));
  // A failing statement rolls back; a body that swallows the error cannot commit.
  status = db_->Transaction(true, [&] {
    absl::Status s = insert(3);
    return s.ok() ? insert(1) : s;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat("postgres ", db_->Describe(),
                                                               " (INSERT INTO t VALUES (?)): "
                                                               "duplicate key value")))
      << status;
  status = db_->Transaction(true, [&] {
    insert(4).IgnoreError();
    insert(1).IgnoreError();
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_EQ(Query(*other, "SELECT string_agg(id::text, ',') FROM t"), "1");

  status = db_->Transaction(
      true, [&] { return db_->Transaction(true, [] { return absl::OkStatus(); }); });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  ASSERT_TRUE(db_->Transaction(false, [&] { return insert(5); }).ok());
  EXPECT_EQ(Query(*other, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"), "1,5");
}

TEST_F(PostgresDbTest, ConstraintsAndConcurrentUpdatesMapToCodes) {
  Exec(*db_, "CREATE TABLE t (id bigint PRIMARY KEY, n bigint NOT NULL CHECK (n >= 0))");
  Exec(*db_, "INSERT INTO t VALUES (1, 0)");
  EXPECT_EQ(db_->Exec("INSERT INTO t VALUES (1, 0)").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(db_->Exec("INSERT INTO t VALUES (2, -1)").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(db_->Exec("INSERT INTO t VALUES (3, NULL)").code(),
            absl::StatusCode::kFailedPrecondition);
  // Repeatable read: a row changed by another connection since the snapshot cannot be updated.
  std::unique_ptr<sql::Database> other = Open();
  ASSERT_NE(other, nullptr);
  absl::Status status = db_->Transaction(true, [&]() -> absl::Status {
    absl::Status s = db_->Exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    if (s.ok()) s = db_->QueryText("SELECT n FROM t WHERE id = 1").status();
    if (s.ok()) s = other->Exec("UPDATE t SET n = 5 WHERE id = 1");
    return s.ok() ? db_->Exec("UPDATE t SET n = n + 1 WHERE id = 1") : s;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_EQ(Query(*db_, "SELECT n FROM t"), "5");
}

TEST_F(PostgresDbTest, SkipLockedSkipsARowAnotherConnectionHolds) {
  Exec(*db_, "CREATE TABLE q (id bigint PRIMARY KEY); INSERT INTO q VALUES (1), (2), (3)");
  std::unique_ptr<sql::Database> other = Open();
  ASSERT_NE(other, nullptr);
  const char* kClaim = "SELECT id FROM q ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
  std::string mine, theirs, after;
  absl::Status status = db_->Transaction(true, [&]() -> absl::Status {
    absl::StatusOr<std::string> id = db_->QueryText(kClaim);
    if (!id.ok()) return id.status();
    mine = *id;
    return other->Transaction(true, [&]() -> absl::Status {
      absl::StatusOr<std::string> id2 = other->QueryText(kClaim);
      if (!id2.ok()) return id2.status();
      theirs = *id2;
      return absl::OkStatus();
    });
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(mine, "1");
  EXPECT_EQ(theirs, "2");
  EXPECT_EQ(Query(*other, kClaim), "1");  // released at commit
}

TEST_F(PostgresDbTest, WrongPasswordIsFailedPreconditionWithoutThePassword) {
  const std::string wrong = "WrongPassword123";
  std::string url = absl::StrReplaceAll(url_, {{server_->password(), wrong}});
  absl::StatusOr<std::unique_ptr<sql::Database>> db = OpenPostgres(url);
  ASSERT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition) << db.status();
  const std::string message(db.status().message());
  EXPECT_TRUE(absl::StrContains(message, "password authentication failed")) << message;
  EXPECT_TRUE(absl::StrContains(message, db_->Describe())) << message;
  EXPECT_FALSE(absl::StrContains(message, wrong)) << message;
  EXPECT_FALSE(absl::StrContains(message, server_->password())) << message;

  db = OpenPostgres(absl::StrCat(url_.substr(0, url_.rfind('/')), "/nosuchdb"));
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition) << db.status();
  EXPECT_TRUE(absl::StrContains(db.status().message(), "does not exist")) << db.status();
}

TEST_F(PostgresDbTest, ReconnectsAfterAServerRestart) {
  Exec(*db_, "CREATE TABLE t (id bigint)");
  ASSERT_TRUE(server_->Stop().ok());
  // Down: the transaction cannot begin, and says why.
  absl::Status down = db_->Transaction(true, [] { return absl::OkStatus(); });
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_FALSE(absl::StrContains(down.message(), server_->password())) << down;
  absl::Status started = server_->Start();
  ASSERT_TRUE(started.ok()) << started;
  absl::Status status =
      db_->Transaction(true, [&] { return db_->Exec("INSERT INTO t VALUES (1)"); });
  ASSERT_TRUE(status.ok()) << status;

  // Restarted while the session was open: the first Transaction reconnects too.
  ASSERT_TRUE(server_->Stop().ok());
  started = server_->Start();
  ASSERT_TRUE(started.ok()) << started;
  status = db_->Transaction(true, [&] { return db_->Exec("INSERT INTO t VALUES (2)"); });
  ASSERT_TRUE(status.ok()) << status;
  // Outside a transaction a statement on a dropped session fails (it may not be safe to
  // repeat); the next one reconnects.
  std::unique_ptr<sql::Database> other = Open();
  ASSERT_NE(other, nullptr);
  Exec(*other,
       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
       "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  EXPECT_EQ(db_->Exec("SELECT 1").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Query(*db_, "SELECT count(*) FROM t"), "2");
}

}  // namespace
}  // namespace signround::jobs
