// Claims and leases of the job store, on SQLite and on Postgres: queue order
// and device filtering, renewal, fencing of a worker that lost its lease,
// lapsed leases (re-queued with an error, failed after max attempts,
// cancelled when asked), a restarted worker's jobs, concurrent claimers
// (each job claimed once), and schema migrations run by several processes.
#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "src/store/job_store.h"
#include "tests/unit/store/job_store_fixture.h"

namespace signround::jobs {
namespace {

constexpr int64_t kLease = 30000;

class LeaseTest : public StoreTest {
 protected:
  std::optional<Job> Claim(const std::string& worker, const std::string& device = "cpu",
                           std::function<bool(const JobSpec&)> accepts = nullptr) {
    ClaimRequest r{device, worker, worker + "/p1", kLease, ++clock_};
    auto claimed = store_->Claim(r, accepts);
    EXPECT_TRUE(claimed.ok()) << claimed.status();
    return claimed.ok() ? *claimed : std::nullopt;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, LeaseTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

TEST_P(LeaseTest, ClaimTakesPriorityThenFifoAndFiltersByDevice) {
  const std::string low = NewJob({}, 0, "cpu");
  const std::string high1 = NewJob({}, 5, "cpu");
  const std::string high2 = NewJob({}, 5, "cpu");
  const std::string gpu = NewJob({}, 0, "cuda");

  std::optional<Job> first = Claim("w1");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->id, high1);
  EXPECT_EQ(first->state, JobState::kRunning);
  EXPECT_EQ(first->attempts, 1);
  EXPECT_EQ(first->device, "cpu");
  EXPECT_EQ(first->lease.worker, "w1");
  EXPECT_EQ(first->lease.owner, "w1/p1/1");
  EXPECT_EQ(first->lease.expires_ms, clock_ + kLease);
  Job stored = MustGet(high1);
  EXPECT_EQ(stored.lease.owner, "w1/p1/1");
  EXPECT_EQ(stored.state, JobState::kRunning);

  std::optional<Job> second = Claim("w1");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->id, high2);
  auto only_cuda = [](const JobSpec& s) { return s.device == "cuda"; };
  std::optional<Job> third = Claim("w2", "cuda:0", only_cuda);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->id, gpu);
  EXPECT_FALSE(Claim("w2", "cuda:0", only_cuda).has_value());
  std::optional<Job> fourth = Claim("w1");
  ASSERT_TRUE(fourth.has_value());
  EXPECT_EQ(fourth->id, low);
  EXPECT_FALSE(Claim("w1").has_value());  // the queue is empty
}

TEST_P(LeaseTest, RenewExtendsOnlyTheOwnersLease) {
  const std::string id = NewJob();
  std::optional<Job> job = Claim("w1");
  ASSERT_TRUE(job.has_value());
  auto renewed = store_->Renew(id, job->lease.owner, kLease, clock_ + 1000);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->expires_ms, clock_ + 1000 + kLease);
  EXPECT_FALSE(renewed->cancel_requested);
  EXPECT_EQ(MustGet(id).lease.expires_ms, clock_ + 1000 + kLease);

  auto other = store_->Renew(id, "w2/p9/1", kLease, clock_);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAborted) << other.status();
  EXPECT_EQ(store_->Renew("j-0000000000000000", "w1/p1/1", kLease, clock_).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(LeaseTest, LapsedLeaseRequeuesThenFencesTheOldOwner) {
  const std::string id = NewJob();
  std::optional<Job> mine = Claim("w1");
  ASSERT_TRUE(mine.has_value());
  // Not lapsed yet: nothing happens.
  auto none = store_->ExpireLeases(mine->lease.expires_ms - 1, 3);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());

  auto lapsed = store_->ExpireLeases(mine->lease.expires_ms + 1, 3);
  ASSERT_TRUE(lapsed.ok()) << lapsed.status();
  ASSERT_EQ(lapsed->size(), 1u);
  EXPECT_EQ((*lapsed)[0].id, id);
  Job job = MustGet(id);
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_TRUE(job.lease.owner.empty());
  EXPECT_NE(job.error.find("w1 stopped renewing its lease"), std::string::npos) << job.error;
  auto events = store_->Events(id, 1);
  ASSERT_TRUE(events.ok());
  const auto& error = std::get<JobError>((*events)[events->size() - 2].payload);
  EXPECT_TRUE(error.will_retry);
  const auto& change = std::get<StateChange>(events->back().payload);
  EXPECT_EQ(change.from, JobState::kRunning);
  EXPECT_EQ(change.to, JobState::kQueued);

  // Another worker takes it; the first one can record nothing more.
  std::optional<Job> theirs = Claim("w2");
  ASSERT_TRUE(theirs.has_value());
  EXPECT_EQ(theirs->attempts, 2);
  EXPECT_EQ(theirs->lease.owner, "w2/p1/2");
  const int64_t before = MustGet(id).last_sequence;
  BlockProgress p;
  p.stats.index = 0;
  p.block_count = 2;
  auto stale = store_->Append(id, p, ++clock_, "", mine->lease.owner);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted) << stale.status();
  auto stale_end = store_->Append(id, StateChange{JobState::kRunning, JobState::kSucceeded, ""},
                                  ++clock_, "", mine->lease.owner);
  EXPECT_EQ(stale_end.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->Renew(id, mine->lease.owner, kLease, clock_).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(MustGet(id).last_sequence, before);
  EXPECT_EQ(MustGet(id).state, JobState::kRunning);
  // The new owner can.
  EXPECT_TRUE(store_->Append(id, p, ++clock_, "", theirs->lease.owner).ok());
}

TEST_P(LeaseTest, LapsedLeaseOnTheLastAttemptFails) {
  const std::string id = NewJob();
  for (int attempt = 1; attempt <= 2; ++attempt) {
    std::optional<Job> job = Claim("w1");
    ASSERT_TRUE(job.has_value());
    ASSERT_TRUE(store_->ExpireLeases(job->lease.expires_ms + 1, 2).ok());
  }
  Job job = MustGet(id);
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_GT(job.end_time_ms, 0);
}

TEST_P(LeaseTest, RestartedWorkerReleasesOnlyItsOwnJobsAtOnce) {
  const std::string a = NewJob();
  const std::string b = NewJob();
  ASSERT_TRUE(Claim("w1").has_value());
  ASSERT_TRUE(Claim("w2").has_value());
  auto released = store_->ExpireLeases(clock_, 3, "w1");  // leases still valid
  ASSERT_TRUE(released.ok()) << released.status();
  ASSERT_EQ(released->size(), 1u);
  EXPECT_EQ((*released)[0].id, a);
  EXPECT_EQ(MustGet(a).state, JobState::kQueued);
  EXPECT_EQ(MustGet(b).state, JobState::kRunning);
  auto events = store_->Events(a, 1);
  ASSERT_TRUE(events.ok());
  EXPECT_NE(std::get<StateChange>(events->back().payload).reason.find("w1 restarted"),
            std::string::npos);
}

TEST_P(LeaseTest, CancelEndsQueuedJobsAndFlagsRunningOnes) {
  const std::string queued = NewJob();
  const std::string running = NewJob();
  std::optional<Job> job = Claim("w1");
  ASSERT_TRUE(job.has_value());
  ASSERT_EQ(job->id, queued);  // FIFO: the first job

  auto flagged = store_->RequestCancel(queued, ++clock_);
  ASSERT_TRUE(flagged.ok()) << flagged.status();
  EXPECT_EQ(flagged->state, JobState::kRunning);  // its worker ends it
  EXPECT_TRUE(flagged->lease.cancel_requested);
  auto lease = store_->Renew(queued, job->lease.owner, kLease, ++clock_);
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE(lease->cancel_requested);

  auto ended = store_->RequestCancel(running, ++clock_);  // still QUEUED
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state, JobState::kCancelled);
  EXPECT_EQ(store_->RequestCancel(running, ++clock_).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // The worker died before it could: the lapsed lease ends the job as cancelled.
  ASSERT_TRUE(store_->ExpireLeases(clock_ + kLease + 1, 3).ok());
  EXPECT_EQ(MustGet(queued).state, JobState::kCancelled);
}

// Four connections claim 40 jobs at once: every job is claimed exactly once.
TEST_P(LeaseTest, ConcurrentClaimersNeverShareAJob) {
  constexpr int kJobs = 40;
  for (int i = 0; i < kJobs; ++i) NewJob();
  std::vector<std::unique_ptr<JobStore>> stores;
  for (int i = 0; i < 4; ++i) {
    auto s = OpenStore();
    ASSERT_TRUE(s.ok()) << s.status();
    stores.push_back(std::move(*s));
  }
  std::vector<std::vector<std::string>> claimed(stores.size());
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (size_t w = 0; w < stores.size(); ++w) {
    threads.emplace_back([&, w] {
      const std::string worker = "w" + std::to_string(w);
      while (true) {
        ClaimRequest r{"cpu", worker, worker + "/p", kLease, clock_};
        auto job = stores[w]->Claim(r, nullptr);
        if (!job.ok()) {
          ++errors;
          continue;
        }
        if (!job->has_value()) return;
        claimed[w].push_back((*job)->id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<std::string> all;
  size_t total = 0;
  for (const auto& ids : claimed) {
    total += ids.size();
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(total, size_t(kJobs));
  EXPECT_EQ(all.size(), size_t(kJobs));
  for (const std::string& id : all) EXPECT_EQ(MustGet(id).attempts, 1) << id;
}

// A database at schema version 1 (before leases) is migrated on open and keeps its jobs.
TEST_P(LeaseTest, VersionOneDatabaseIsMigrated) {
  const std::string id = NewJob();
  store_.reset();
  std::unique_ptr<sql::Database> raw = Raw();
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Exec("DROP INDEX jobs_by_tenant").ok());  // version 3
  ASSERT_TRUE(raw->Exec("ALTER TABLE jobs DROP COLUMN tenant").ok());
  for (const char* column :
       {"lease_worker", "lease_owner", "lease_expires_ms", "cancel_requested"}) {
    if (postgres() && std::string(column) == "lease_expires_ms") {
      ASSERT_TRUE(raw->Exec("DROP INDEX jobs_leases").ok());
    }
    ASSERT_TRUE(raw->Exec(std::string("ALTER TABLE jobs DROP COLUMN ") + column).ok()) << column;
  }
  ASSERT_TRUE(
      raw->Exec(postgres() ? "UPDATE signround_schema SET version = 1" : "PRAGMA user_version = 1")
          .ok());
  raw.reset();
  Reopen();
  EXPECT_EQ(MustGet(id).state, JobState::kQueued);
  std::optional<Job> job = Claim("w1");
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->id, id);
  EXPECT_EQ(MustGet(id).lease.owner, "w1/p1/1");
}

// Several processes (here: connections) starting at once on a new database
// migrate it once.
TEST_P(LeaseTest, ConcurrentOpensMigrateOnce) {
  store_.reset();
  if (postgres()) {
    ASSERT_TRUE(
        Raw()->Exec("DROP TABLE events, attempts, job_labels, jobs, signround_schema").ok());
  } else {
    ::unlink(url_.c_str());
    ::unlink((url_ + "-wal").c_str());
    ::unlink((url_ + "-shm").c_str());
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (!OpenStore().ok()) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  if (postgres()) {
    auto rows = Raw()->QueryText("SELECT count(*) FROM signround_schema");
    ASSERT_TRUE(rows.ok());
    EXPECT_EQ(*rows, "1");
  }
  Reopen();
  EXPECT_FALSE(NewJob().empty());
}

}  // namespace
}  // namespace signround::jobs
