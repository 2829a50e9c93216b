// A job store test fixture run against both backends: SQLite in a scratch
// file, and a real Postgres (tests/testing/postgres_server.h, one server per
// test binary, a fresh database per test). The Postgres cases skip, saying
// why, where Postgres is not installed.
#pragma once

#include <cctype>
#include <map>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "src/store/job_store.h"
#include "src/store/postgres_db.h"
#include "src/store/sqlite_db.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/test_files.h"

namespace signround::jobs {

enum class Backend { kSqlite, kPostgres };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

// The test binary's Postgres server, started on first use; nullptr (and `why`)
// when it cannot run here.
inline testing::PostgresTestServer* SharedPostgres(std::string* why) {
  static testing::PostgresTestServer* server = nullptr;
  static std::string failure;
  static bool tried = false;
  if (!tried) {
    tried = true;
    if (!testing::PostgresAvailable(&failure)) {
      failure = "Postgres is not installed here: " + failure;
    } else {
      auto* s = new testing::PostgresTestServer();  // stopped by its watchdog at exit
      absl::Status started = s->Start();
      if (started.ok()) {
        server = s;
      } else {
        failure = std::string(started.message());
      }
    }
  }
  if (server == nullptr) *why = failure;
  return server;
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres) {
      std::string why;
      testing::PostgresTestServer* pg = SharedPostgres(&why);
      if (pg == nullptr) GTEST_SKIP() << why;
      absl::StatusOr<std::string> url = pg->CreateDatabase(DatabaseName());
      ASSERT_TRUE(url.ok()) << url.status();
      url_ = *url;
    } else {
      url_ = dir_.File("jobs.db");
    }
    Reopen();
  }

  bool postgres() const { return GetParam() == Backend::kPostgres; }

  // A QUEUED job with default settings; labels and priority as given.
  std::string NewJob(std::map<std::string, std::string> labels = {}, int priority = 0,
                     const std::string& device = "") {
    JobSpec spec;
    spec.model_uri = "file:///m";
    spec.output_uri = "file:///o";
    spec.labels = std::move(labels);
    spec.priority = priority;
    spec.device = device;
    auto created = store_->Create(spec, "{}", ++clock_);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->job.id : "";
  }

  JobEvent MustAppend(const std::string& id, const EventPayload& payload,
                      const std::string& device = "") {
    auto event = store_->Append(id, payload, ++clock_, device);
    EXPECT_TRUE(event.ok()) << event.status();
    return event.ok() ? *event : JobEvent{};
  }

  Job MustGet(const std::string& id) {
    auto job = store_->Get(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : Job{};
  }

  // A raw connection to the test's database (to inspect or damage it).
  std::unique_ptr<sql::Database> Raw() {
    auto db = postgres() ? OpenPostgres(url_) : OpenSqlite(url_);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  absl::StatusOr<std::unique_ptr<JobStore>> OpenStore() {
    if (!postgres()) return JobStore::Open(url_);
    absl::StatusOr<std::unique_ptr<sql::Database>> db = OpenPostgres(url_);
    if (!db.ok()) return db.status();
    return JobStore::Open(std::move(*db));
  }

  void Reopen() {
    store_.reset();
    auto store = OpenStore();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // The test's name as a database name: [a-z0-9_], at most 63 characters.
  static std::string DatabaseName() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "t_";
    for (char c : std::string(info->name())) {
      name += std::isalnum(static_cast<unsigned char>(c))
                  ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                  : '_';
    }
    return name.substr(0, 63);
  }

  testing::TempDir dir_;
  std::string url_;  // the SQLite file, or the Postgres database's URL
  std::unique_ptr<JobStore> store_;
  int64_t clock_ = 1'700'000'000'000;
};

}  // namespace signround::jobs
