// The scheduler's slots: one per device, claiming and running jobs, woken by
// Wake(), no claims once draining, ended by Stop() and Join().
#include "src/jobs/scheduler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace signround::jobs {
namespace {

using std::chrono::milliseconds;

// A queue of jobs for the claim half and a record of what the run half ran.
class FakeJobs {
 public:
  void Queue(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    queued_.push_back(id);
  }

  absl::StatusOr<std::optional<Job>> Claim(const std::string& device) {
    std::lock_guard<std::mutex> lock(mu_);
    ++claims_;
    if (fail_claims_) return absl::UnavailableError("store down");
    if (queued_.empty()) return std::optional<Job>();
    Job job;
    job.id = queued_.front();
    queued_.pop_front();
    return std::optional<Job>(job);
  }

  void Run(const Job& job, const std::string& device) {
    std::lock_guard<std::mutex> lock(mu_);
    ran_.emplace_back(job.id, device);
    cv_.notify_all();
  }

  // Waits (up to `timeout`) until `n` jobs have run.
  bool WaitForRuns(size_t n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return ran_.size() >= n; });
  }

  std::vector<std::pair<std::string, std::string>> ran() {
    std::lock_guard<std::mutex> lock(mu_);
    return ran_;
  }
  int claims() {
    std::lock_guard<std::mutex> lock(mu_);
    return claims_;
  }
  void set_fail_claims(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_claims_ = fail;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queued_;
  std::vector<std::pair<std::string, std::string>> ran_;
  int claims_ = 0;
  bool fail_claims_ = false;
};

TEST(SchedulerTest, RunsQueuedJobsOnItsSlots) {
  FakeJobs jobs;
  jobs.Queue("a");
  jobs.Queue("b");
  jobs.Queue("c");
  Scheduler scheduler(
      {"cpu", "cuda:0"}, [&jobs](const std::string& device) { return jobs.Claim(device); },
      [&jobs](const Job& job, const std::string& device) { jobs.Run(job, device); });
  scheduler.Start();
  ASSERT_TRUE(jobs.WaitForRuns(3, milliseconds(10000)));
  std::set<std::string> ids;
  for (const auto& [id, device] : jobs.ran()) {
    ids.insert(id);
    EXPECT_TRUE(device == "cpu" || device == "cuda:0") << device;
  }
  EXPECT_EQ(ids, (std::set<std::string>{"a", "b", "c"}));
  scheduler.Stop();
  scheduler.Join();
}

TEST(SchedulerTest, WakeMakesAWaitingSlotLookAtOnce) {
  FakeJobs jobs;
  Scheduler scheduler(
      {"cpu"}, [&jobs](const std::string& device) { return jobs.Claim(device); },
      [&jobs](const Job& job, const std::string& device) { jobs.Run(job, device); });
  scheduler.Start();
  // Without Wake() the slot looks again within a second; either way it runs the job.
  std::this_thread::sleep_for(milliseconds(100));
  jobs.Queue("a");
  scheduler.Wake();
  ASSERT_TRUE(jobs.WaitForRuns(1, milliseconds(10000)));
  EXPECT_EQ(jobs.ran()[0], std::make_pair(std::string("a"), std::string("cpu")));
  scheduler.Stop();
  scheduler.Join();
}

TEST(SchedulerTest, ClaimErrorsAreRetried) {
  FakeJobs jobs;
  jobs.set_fail_claims(true);
  jobs.Queue("a");
  Scheduler scheduler(
      {"cpu"}, [&jobs](const std::string& device) { return jobs.Claim(device); },
      [&jobs](const Job& job, const std::string& device) { jobs.Run(job, device); });
  scheduler.Start();
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_TRUE(jobs.ran().empty());
  jobs.set_fail_claims(false);
  scheduler.Wake();
  ASSERT_TRUE(jobs.WaitForRuns(1, milliseconds(10000)));
  scheduler.Stop();
  scheduler.Join();
}

TEST(SchedulerTest, NoClaimsOnceDraining) {
  FakeJobs jobs;
  Scheduler scheduler(
      {"cpu"}, [&jobs](const std::string& device) { return jobs.Claim(device); },
      [&jobs](const Job& job, const std::string& device) { jobs.Run(job, device); });
  scheduler.Start();
  scheduler.StopClaiming();
  EXPECT_TRUE(scheduler.draining());
  std::this_thread::sleep_for(milliseconds(100));  // a claim in flight ends
  const int claims = jobs.claims();
  jobs.Queue("a");
  scheduler.Wake();
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(jobs.claims(), claims);
  EXPECT_TRUE(jobs.ran().empty());
  scheduler.Stop();
  scheduler.Join();
}

TEST(SchedulerTest, StopEndsRunningAttemptsAndJoinEndsTheSlots) {
  FakeJobs jobs;
  jobs.Queue("a");
  std::mutex mu;
  std::condition_variable cv;
  bool running = false;
  Scheduler* self = nullptr;
  Scheduler scheduler(
      {"cpu", "cpu"}, [&jobs](const std::string& device) { return jobs.Claim(device); },
      [&](const Job& job, const std::string& device) {
        {
          std::lock_guard<std::mutex> lock(mu);
          running = true;
        }
        cv.notify_all();
        while (!self->stopping()) std::this_thread::sleep_for(milliseconds(5));
        jobs.Run(job, device);
      });
  self = &scheduler;
  scheduler.Start();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, milliseconds(10000), [&] { return running; }));
  }
  scheduler.Stop();
  scheduler.Join();  // returns: the attempt saw stopping() and both slots ended
  EXPECT_EQ(jobs.ran().size(), 1u);
}

TEST(SchedulerTest, WithoutDevicesNothingRuns) {
  FakeJobs jobs;
  jobs.Queue("a");
  Scheduler scheduler(
      {}, [&jobs](const std::string& device) { return jobs.Claim(device); },
      [&jobs](const Job& job, const std::string& device) { jobs.Run(job, device); });
  scheduler.Start();
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(jobs.claims(), 0);
  scheduler.Stop();
  scheduler.Join();
}

}  // namespace
}  // namespace signround::jobs
