// The scheduler of a JobService: one slot thread per device ("cpu",
// "cuda:0", ...). A slot waits for work, claims the next queued job its device
// accepts and runs that job's attempt, then looks again. Wake() (a job was
// queued here, a slot freed up, a lease lapsed) makes waiting slots look at
// once; jobs queued through other processes are found within a second.
//
// Shutting down: StopClaiming() (slots claim no more jobs; running attempts go
// on), then Stop() (running attempts end now), then Join(). The JobService
// supplies what a claim and an attempt are; the scheduler knows neither the
// store nor the worker processes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "src/jobs/job.h"

namespace signround::jobs {

class Scheduler {
 public:
  // Claims the next queued job `device` accepts: the job as claimed, nullopt
  // when there is none, or an error (logged; the slot waits and tries again).
  using ClaimFn = std::function<absl::StatusOr<std::optional<Job>>(const std::string& device)>;
  // Runs the attempt of a job claimed for `device`; returns when it has ended.
  using RunFn = std::function<void(const Job& job, const std::string& device)>;

  Scheduler(std::vector<std::string> devices, ClaimFn claim, RunFn run);
  ~Scheduler();  // Stop(), Join()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts one slot thread per device (none without devices).
  void Start();
  // Slots waiting for work look for it now.
  void Wake();

  // Slots claim no more jobs; running attempts go on.
  void StopClaiming() { draining_.store(true); }
  bool draining() const { return draining_.load(); }
  // Running attempts end now (RunFn watches stopping()); each slot ends once
  // its attempt has.
  void Stop() { stopping_.store(true); }
  bool stopping() const { return stopping_.load(); }
  // Wakes the waiting slots and waits for every slot to end. Call Stop() first.
  void Join();

 private:
  void SlotLoop(const std::string& device);

  const std::vector<std::string> devices_;
  const ClaimFn claim_;
  const RunFn run_;

  std::mutex mu_;
  std::condition_variable work_cv_;    // a job was queued, or stopping
  uint64_t work_version_ = 0;          // bumped by Wake()
  std::atomic<bool> draining_{false};  // no new claims
  std::atomic<bool> stopping_{false};  // running attempts end now
  std::vector<std::thread> slots_;
};

}  // namespace signround::jobs
