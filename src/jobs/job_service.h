// The job service core behind the gRPC API (role `all`): validates and stores
// submissions, runs queued jobs on device slots (one child
// `signround-worker quantize` per running job), relays their progress into the
// store and to watchers, uploads the artifacts, and cancels, retries and
// recovers jobs. No gRPC here: server/ adapts this to the proto.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "src/jobs/child_process.h"
#include "src/jobs/event_hub.h"
#include "src/jobs/input_cache.h"
#include "src/jobs/job.h"
#include "src/jobs/job_store.h"
#include "src/jobs/service_metrics.h"
#include "src/storage/s3_store.h"

namespace signround::jobs {

struct JobServiceOptions {
  std::string data_dir = "signround-data";
  std::vector<std::string> devices = {"cpu"};  // one slot each: "cpu", "cuda:0", ...
  int max_attempts = 3;                        // attempts per job before FAILED
  std::string worker_bin;                      // absolute path of signround-worker
  std::chrono::milliseconds cancel_grace{10000};  // SIGTERM to SIGKILL
  int worker_threads = 0;                      // --threads of each worker (0: default)
  S3Options s3;                                // for s3:// inputs and outputs
};

class JobService {
 public:
  // Opens the store under data_dir (taking its lock: one server per data
  // directory), re-queues jobs an earlier process left RUNNING or UPLOADING,
  // and starts one slot thread per device.
  static absl::StatusOr<std::unique_ptr<JobService>> Start(JobServiceOptions options,
                                                           metrics::Registry& registry);
  ~JobService();  // Shutdown()

  // Validates (INVALID_ARGUMENT naming the field) and stores a QUEUED job.
  absl::StatusOr<CreateResult> Submit(const JobSpec& spec);
  absl::StatusOr<Job> Get(const std::string& id);
  absl::StatusOr<ListPage> List(const ListQuery& query);
  // Ends a job (see the proto's CancelJob); FAILED_PRECONDITION when it had ended.
  absl::StatusOr<Job> Cancel(const std::string& id);
  // Calls `send` with the job's events from `from_sequence` on, then with new
  // ones as they are stored, until the job has ended (OK), `send` returns
  // false or `stop` returns true (CANCELLED).
  absl::Status Watch(const std::string& id, int64_t from_sequence,
                     const std::function<bool(const JobEvent&)>& send,
                     const std::function<bool()>& stop);

  const std::vector<std::string>& devices() const { return options_.devices; }

  // Stops the slots: running children are killed and their jobs re-queued
  // (they resume on the next start). Idempotent.
  void Shutdown();

 private:
  // What the slot thread and Cancel share about a running attempt.
  struct Attempt {
    std::unique_ptr<ChildProcess> child;  // set while the worker runs
    bool cancel = false;                  // CancelJob asked for it
  };
  enum class Outcome { kSucceeded, kRetry, kFailed, kCancelled, kInterrupted };

  JobService(JobServiceOptions options, std::unique_ptr<JobStore> store, int lock_fd,
             metrics::Registry& registry);
  absl::Status Recover();
  void SlotLoop(const std::string& device);
  void RunAttempt(const Job& job, const std::string& device);

  // job_attempt.cc: the steps of one attempt.
  absl::StatusOr<std::vector<std::string>> PrepareWorker(const Job& job, const std::string& device,
                                                         const std::string& job_dir);
  absl::Status RunWorker(const Job& job, const std::vector<std::string>& argv,
                         const std::string& device, const std::string& job_dir,
                         bool* permanent);
  absl::Status Upload(const Job& job, const std::string& out_dir);

  // Appends an event, wakes watchers; logs (but otherwise ignores) failures.
  absl::StatusOr<JobEvent> Record(const std::string& id, const EventPayload& payload,
                                  const std::string& device = "");
  bool CancelRequested(const std::string& id);
  void WakeSlots();
  bool Stopping() const { return stopping_.load(); }
  std::string JobDir(const std::string& id) const;

  JobServiceOptions options_;
  std::unique_ptr<JobStore> store_;
  int lock_fd_;
  InputCache cache_;
  ServiceMetrics metrics_;
  EventHub hub_;

  std::mutex mu_;
  std::condition_variable work_cv_;  // a job was queued, or stopping
  uint64_t work_version_ = 0;        // bumped by WakeSlots()
  std::condition_variable ended_cv_; // an attempt finished
  std::map<std::string, std::shared_ptr<Attempt>> running_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> slots_;
};

}  // namespace signround::jobs
