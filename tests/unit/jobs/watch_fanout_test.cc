// The WatchJob fan-out (src/jobs/watch_fanout.h) over a real job store (SQLite, and
// Postgres where installed): order without gaps from where each watch starts, one store
// read per job and change whatever the number of watchers, the end of a job, a paused
// sink left behind and catching up, Remove, Stop.
#include "src/jobs/watch_fanout.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/store/job_store_fixture.h"

namespace signround::jobs {
namespace {

using std::chrono::milliseconds;

// Collects what the fan-out hands it; `budget` events before saying "no more" (-1: never).
class TestSink : public WatchSink {
 public:
  explicit TestSink(int budget = -1) : budget_(budget) {}

  bool Deliver(const std::shared_ptr<const JobEvent>& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(closed_) << "Deliver after Close";
    sequences_.push_back(event->sequence);
    cv_.notify_all();
    return budget_ < 0 || --budget_ > 0;
  }
  void Close(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(closed_) << "closed twice";
    closed_ = true;
    status_ = status;
    cv_.notify_all();
  }

  void SetBudget(int budget) {
    std::lock_guard<std::mutex> lock(mu_);
    budget_ = budget;
  }
  // Waits (up to 10 s) until it holds `n` events; returns them.
  std::vector<int64_t> WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return sequences_.size() >= n; });
    return sequences_;
  }
  // Waits (up to 10 s) for Close; its status (UNKNOWN "not closed" on timeout).
  absl::Status WaitClosed() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return closed_; });
    return closed_ ? status_ : absl::UnknownError("not closed");
  }
  bool closed() {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }
  std::vector<int64_t> sequences() {
    std::lock_guard<std::mutex> lock(mu_);
    return sequences_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int budget_;
  std::vector<int64_t> sequences_;
  bool closed_ = false;
  absl::Status status_;
};

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t s = first; s <= last; ++s) out.push_back(s);
  return out;
}

class WatchFanoutTest : public StoreTest {
 protected:
  // Appends `n` events (JobErrors, will_retry) to a QUEUED job and wakes the fan-out.
  void AddEvents(const std::string& id, int n) {
    for (int i = 0; i < n; ++i) MustAppend(id, JobError{"event " + std::to_string(i), true});
    hub_.Publish();
  }
  void EndJob(const std::string& id) {
    MustAppend(id, StateChange{JobState::kQueued, JobState::kCancelled, "test"});
    hub_.Publish();
  }

  EventHub hub_;
};

TEST_P(WatchFanoutTest, EveryWatcherGetsEveryEventInOrderFromOneReadPerChange) {
  const std::string id = NewJob();  // event 1: -> QUEUED
  AddEvents(id, 9);
  // A long poll: only the hub wakes the fan-out, so reads count changes, not time.
  WatchFanout fanout(store_.get(), &hub_, milliseconds(60000));
  constexpr int kWatchers = 200;
  std::vector<std::shared_ptr<TestSink>> sinks;
  for (int i = 0; i < kWatchers; ++i) {
    sinks.push_back(std::make_shared<TestSink>());
    fanout.Add(id, i % 2 ? 1 : 4, sinks.back());  // half from the start, half from 4
  }
  for (int i = 0; i < kWatchers; ++i) {
    EXPECT_EQ(sinks[i]->WaitFor(i % 2 ? 10 : 7), Range(i % 2 ? 1 : 4, 10)) << i;
  }
  EXPECT_EQ(fanout.watches(), static_cast<size_t>(kWatchers));

  // Now live: one new event is one read (a second at most, when a pass was under way).
  const uint64_t reads = fanout.store_reads();
  AddEvents(id, 1);
  for (int i = 0; i < kWatchers; ++i) {
    ASSERT_EQ(sinks[i]->WaitFor(i % 2 ? 11 : 8), Range(i % 2 ? 1 : 4, 11)) << i;
  }
  EXPECT_LE(fanout.store_reads() - reads, 2u);

  EndJob(id);  // event 12 ends the job: each watcher gets it, then Close(OK)
  for (auto& sink : sinks) {
    EXPECT_EQ(sink->WaitClosed(), absl::OkStatus());
    EXPECT_EQ(sink->sequences().back(), 12);
  }
  EXPECT_EQ(fanout.watches(), 0u);
}

TEST_P(WatchFanoutTest, StartingPastTheEndClosesAtOnce) {
  const std::string id = NewJob();
  EndJob(id);  // events 1, 2
  WatchFanout fanout(store_.get(), &hub_, milliseconds(60000));
  auto past = std::make_shared<TestSink>();
  auto last = std::make_shared<TestSink>();
  fanout.Add(id, 3, past);
  fanout.Add(id, 2, last);
  EXPECT_EQ(past->WaitClosed(), absl::OkStatus());
  EXPECT_TRUE(past->sequences().empty());
  EXPECT_EQ(last->WaitClosed(), absl::OkStatus());
  EXPECT_EQ(last->sequences(), std::vector<int64_t>{2});
}

TEST_P(WatchFanoutTest, StartingAheadOfARunningJobWaitsForItsEnd) {
  const std::string id = NewJob();
  WatchFanout fanout(store_.get(), &hub_, milliseconds(60000));
  auto ahead = std::make_shared<TestSink>();
  fanout.Add(id, 50, ahead);
  AddEvents(id, 3);
  EXPECT_FALSE(ahead->closed());
  EndJob(id);  // event 5 < 50: nothing for it, but the job is over
  EXPECT_EQ(ahead->WaitClosed(), absl::OkStatus());
  EXPECT_TRUE(ahead->sequences().empty());
}

TEST_P(WatchFanoutTest, APausedSinkIsLeftBehindThenCatchesUpWithoutGaps) {
  const std::string id = NewJob();
  WatchFanout fanout(store_.get(), &hub_, milliseconds(60000));
  auto slow = std::make_shared<TestSink>(3);  // takes 3, then wants no more
  auto fast = std::make_shared<TestSink>();
  const uint64_t slow_token = fanout.Add(id, 1, slow);
  fanout.Add(id, 1, fast);
  AddEvents(id, 20);  // events 2..21
  EXPECT_EQ(fast->WaitFor(21), Range(1, 21));
  EXPECT_EQ(slow->sequences(), Range(1, 3));
  for (size_t have = 3; have < 21; have += 3) {
    slow->SetBudget(3);
    fanout.Resume(slow_token);
    EXPECT_EQ(slow->WaitFor(have + 3), Range(1, static_cast<int64_t>(have + 3)));
  }
  EndJob(id);
  EXPECT_EQ(fast->WaitClosed(), absl::OkStatus());
  EXPECT_FALSE(slow->closed());  // still paused, behind the end
  slow->SetBudget(-1);
  fanout.Resume(slow_token);
  EXPECT_EQ(slow->WaitClosed(), absl::OkStatus());
  EXPECT_EQ(slow->sequences(), Range(1, 22));
}

TEST_P(WatchFanoutTest, RemovedWatchesGetNothingMoreAndStopClosesTheRest) {
  const std::string id = NewJob();
  auto fanout = std::make_unique<WatchFanout>(store_.get(), &hub_, milliseconds(60000));
  auto removed = std::make_shared<TestSink>();
  auto open = std::make_shared<TestSink>();
  const uint64_t token = fanout->Add(id, 1, removed);
  fanout->Add(id, 1, open);
  EXPECT_EQ(removed->WaitFor(1), std::vector<int64_t>{1});
  fanout->Remove(token);
  fanout->Remove(token);  // again: ignored
  AddEvents(id, 2);
  EXPECT_EQ(open->WaitFor(3), Range(1, 3));
  EXPECT_EQ(removed->sequences(), std::vector<int64_t>{1});

  fanout->Stop();
  absl::Status stopped = open->WaitClosed();
  EXPECT_EQ(stopped.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(stopped.message().find("from sequence 4"), std::string::npos) << stopped;
  EXPECT_FALSE(removed->closed());
  auto late = std::make_shared<TestSink>();
  fanout->Add(id, 1, late);
  EXPECT_EQ(late->WaitClosed().code(), absl::StatusCode::kUnavailable);
  fanout.reset();
}

TEST_P(WatchFanoutTest, AnUnknownJobClosesWithTheStoresAnswer) {
  WatchFanout fanout(store_.get(), &hub_, milliseconds(60000));
  auto sink = std::make_shared<TestSink>();
  fanout.Add("j-ffffffffffffffff", 1, sink);
  EXPECT_EQ(sink->WaitClosed().code(), absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Stores, WatchFanoutTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

}  // namespace
}  // namespace signround::jobs
