// The job service core behind the gRPC API: validates and stores submissions,
// runs queued jobs on device slots (scheduler.h; one child `signround-worker
// quantize` per running job), relays their progress into the store and to watchers, uploads
// the artifacts, and cancels, retries and recovers jobs. No gRPC here:
// server/ adapts this to the proto.
//
// Roles: `all` has both halves; `api` (run_slots false) only stores, reads and
// cancels; `worker` runs slots. Slots claim jobs with a lease they renew by
// heartbeat; any process ends lapsed leases, and the job resumes elsewhere
// from the block checkpoints mirrored next to its output (src/attempts/checkpoint_mirror.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "src/attempts/child_process.h"
#include "src/attempts/input_cache.h"
#include "src/jobs/event_hub.h"
#include "src/jobs/job.h"
#include "src/jobs/scheduler.h"
#include "src/jobs/service_metrics.h"
#include "src/jobs/watch_fanout.h"
#include "src/storage/local_roots.h"
#include "src/storage/s3_store.h"
#include "src/store/job_store.h"

namespace signround::jobs {

struct JobServiceOptions {
  // "sqlite:PATH" or "postgres://..."; empty: sqlite:DATA_DIR/signround.db.
  std::string store;
  bool run_slots = true;  // false: role api
  std::string data_dir = "signround-data";
  std::vector<std::string> devices = {"cpu"};     // one slot each: "cpu", "cuda:0", ...
  int max_attempts = 3;                           // attempts per job before FAILED
  std::string worker_bin;                         // absolute path of signround-worker
  std::chrono::milliseconds cancel_grace{10000};  // SIGTERM to SIGKILL
  int worker_threads = 0;                         // --threads of each worker (0: default)
  S3Options s3;                                   // for s3:// inputs and outputs
  // Names this process's leases; a restarted process with the same name
  // re-queues its predecessor's jobs at once. Empty: hostname + ":" + data_dir.
  std::string worker_name;
  std::chrono::milliseconds lease{30000};  // renewed every third of it
  // On Shutdown, running jobs may finish their current block for this long
  // before their children are stopped and the jobs released to the queue.
  std::chrono::milliseconds drain{0};
  // file:// URIs must resolve inside these (checked at submission and again
  // before each attempt); empty: anywhere.
  LocalRoots local_roots;
  int max_queued_jobs_per_tenant = 1000;  // 0: no limit
  int max_watches_per_tenant = 10000;     // per process; 0: no limit
};

class JobService {
 public:
  // Opens the store. With slots: takes the data directory's lock (one server
  // per data directory), re-queues the jobs this worker name's previous
  // process left running, and starts one slot thread per device. Every role
  // starts the lease keeper (heartbeats, lapsed leases).
  static absl::StatusOr<std::unique_ptr<JobService>> Start(JobServiceOptions options,
                                                           metrics::Registry& registry);
  ~JobService();  // Shutdown()

  // Every call acts for a Caller: a job belongs to the tenant that submitted
  // it, and a submitter asking for another tenant's job gets the NOT_FOUND an
  // unknown id gets. An admin sees every tenant's jobs.

  // Checks the caller's access to the URIs (PERMISSION_DENIED: a file:// path
  // outside the local roots, an S3 bucket not on the tenant's list), validates
  // (INVALID_ARGUMENT naming the field) and stores a QUEUED job;
  // RESOURCE_EXHAUSTED when the tenant has max_queued_jobs_per_tenant queued.
  absl::StatusOr<CreateResult> Submit(const JobSpec& spec, const Caller& caller = {});
  absl::StatusOr<Job> Get(const std::string& id, const Caller& caller = {});
  absl::StatusOr<ListPage> List(ListQuery query, const Caller& caller = {});
  // The job's stored events with sequence >= from_sequence, in order, at most `limit`
  // (1..1000, else INVALID_ARGUMENT); NOT_FOUND as Get.
  absl::StatusOr<std::vector<JobEvent>> Events(const std::string& id, int64_t from_sequence,
                                               int limit, const Caller& caller = {});
  // Ends a job (see the proto's CancelJob); FAILED_PRECONDITION when it had ended.
  absl::StatusOr<Job> Cancel(const std::string& id, const Caller& caller = {});
  // An open watch; destroying it ends the watch (without closing its sink).
  class WatchHandle {
   public:
    ~WatchHandle();
    // The sink takes events again after its Deliver returned false.
    void Resume();

   private:
    friend class JobService;
    WatchHandle(JobService* service, std::string tenant) : service_(service), tenant_(tenant) {}
    JobService* service_;
    std::string tenant_;
    uint64_t token_ = 0;
  };
  // Hands `sink` the job's events from `from_sequence` on, then new ones as they are
  // stored, until the job has ended (sink->Close(OK)); see watch_fanout.h. NOT_FOUND as
  // Get; RESOURCE_EXHAUSTED when the tenant already has max_watches_per_tenant watches
  // open on this process.
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const std::string& id, int64_t from_sequence,
                                                     std::shared_ptr<WatchSink> sink,
                                                     const Caller& caller = {});

  const std::vector<std::string>& devices() const { return options_.devices; }

  // Stops the slots (after the drain time, see JobServiceOptions::drain):
  // running children are stopped and their jobs released to the queue, to
  // resume elsewhere or on the next start. Idempotent.
  void Shutdown();

 private:
  // What the slot thread, the lease keeper and Cancel share about a running attempt.
  struct Attempt {
    std::shared_ptr<ChildProcess> child;  // set while the worker runs
    std::string owner;                    // the lease
    bool cancel = false;                  // CancelJob asked for it
    bool lost = false;                    // the lease is gone: record and upload nothing
    int blocks = 0;                       // blocks finished in this attempt (drain waits for one)
  };
  enum class Outcome { kSucceeded, kRetry, kFailed, kCancelled, kInterrupted, kLost };

  JobService(JobServiceOptions options, std::unique_ptr<JobStore> store, int lock_fd,
             metrics::Registry& registry);
  absl::Status Recover();
  // The scheduler's two halves: claim the next queued job `device` accepts,
  // and run a claimed job's attempt (registered in running_) on it.
  absl::StatusOr<std::optional<Job>> ClaimFor(const std::string& device);
  void RunClaimed(const Job& job, const std::string& device);
  void RunAttempt(const Job& job, const std::string& device);
  // lease_keeper.cc: heartbeats for this process's attempts, lapsed leases of any.
  void LeaseKeeperLoop();
  void KeepLeases();
  // Stops the attempt's child (if it has one) from another thread: SIGTERM,
  // SIGKILL after the cancel grace. The slot thread then ends the attempt.
  void StopChild(const std::shared_ptr<Attempt>& attempt);
  void Drain();

  // job_attempt.cc: the steps of one attempt.
  absl::StatusOr<std::vector<std::string>> PrepareWorker(const Job& job, const std::string& device,
                                                         const std::string& job_dir);
  // The worker's end: OK, or an error with `*permanent` set when another attempt would fail
  // too, and `*some_formats_failed` when it finished with some formats written (exit code 3).
  absl::Status RunWorker(const Job& job, const std::vector<std::string>& argv,
                         const std::string& device, const std::string& job_dir, bool* permanent,
                         bool* some_formats_failed);
  absl::Status Upload(const Job& job, const std::string& out_dir);

  // Appends an event, wakes watchers; logs (but otherwise ignores) failures.
  // With the attempt's lease owner: a refusal because the lease is gone marks
  // the attempt lost.
  absl::StatusOr<JobEvent> Record(const std::string& id, const EventPayload& payload,
                                  const std::string& device = "", const std::string& owner = "");
  std::shared_ptr<Attempt> FindAttempt(const std::string& id);
  // access.cc: PERMISSION_DENIED unless every URI of `spec` is the caller's to use.
  absl::Status CheckAccess(const JobSpec& spec, const Caller& caller) const;
  // file:// URIs inside the local roots (before each attempt: a symlink may
  // have changed since the job was submitted).
  absl::Status CheckLocalRoots(const JobSpec& spec) const;
  bool CancelRequested(const std::string& id);
  bool LeaseLost(const std::string& id);
  void WakeSlots() { scheduler_.Wake(); }
  bool Stopping() const { return scheduler_.stopping(); }
  static int64_t NowMs();  // Unix epoch milliseconds, the store's clock
  std::string JobDir(const std::string& id) const;

  JobServiceOptions options_;
  std::unique_ptr<JobStore> store_;
  int lock_fd_;
  InputCache cache_;
  ServiceMetrics metrics_;
  EventHub hub_;
  WatchFanout fanout_{store_.get(), &hub_, std::chrono::milliseconds(250)};

  std::mutex mu_;
  std::condition_variable ended_cv_;  // an attempt finished
  std::map<std::string, std::shared_ptr<Attempt>> running_;
  std::map<std::string, int> watches_;  // open Watch calls per tenant
  std::string instance_;                // worker_name + "/" + a nonce: this process's leases
  Scheduler scheduler_;                 // the slots: one thread per device
  std::thread lease_keeper_;
};

}  // namespace signround::jobs
