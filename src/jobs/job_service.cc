#include "src/jobs/job_service.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/jobs/job_validation.h"

namespace signround::jobs {
namespace {

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

bool EndsJob(const JobEvent& e) {
  const auto* change = std::get_if<StateChange>(&e.payload);
  return change != nullptr && IsTerminal(change->to);
}

// An exclusive lock on DATA_DIR/LOCK for the life of the process.
absl::StatusOr<int> LockDataDir(const std::string& dir) {
  SR_RETURN_IF_ERROR(MakeDirectories(dir));
  const std::string path = JoinPath(dir, "LOCK");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": another signround-server uses this data directory"));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobService>> JobService::Start(JobServiceOptions options,
                                                              metrics::Registry& registry) {
  if (options.devices.empty()) return absl::InvalidArgumentError("devices: none given");
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("max_attempts: must be at least 1");
  }
  SR_ASSIGN_OR_RETURN(int lock_fd, LockDataDir(options.data_dir));
  absl::StatusOr<std::unique_ptr<JobStore>> store =
      JobStore::Open(JoinPath(options.data_dir, "signround.db"));
  if (!store.ok()) {
    ::close(lock_fd);
    return store.status();
  }
  std::unique_ptr<JobService> service(
      new JobService(std::move(options), *std::move(store), lock_fd, registry));
  SR_RETURN_IF_ERROR(service->Recover());
  for (const std::string& device : service->options_.devices) {
    service->slots_.emplace_back([s = service.get(), device] { s->SlotLoop(device); });
  }
  return service;
}

JobService::JobService(JobServiceOptions options, std::unique_ptr<JobStore> store, int lock_fd,
                       metrics::Registry& registry)
    : options_(std::move(options)),
      store_(std::move(store)),
      lock_fd_(lock_fd),
      cache_(JoinPath(options_.data_dir, "cache"), options_.s3),
      metrics_(registry) {
  registry.AddCollector([this] {
    absl::StatusOr<std::map<JobState, int64_t>> counts = store_->CountByState();
    if (!counts.ok()) return;
    for (const auto& [state, n] : *counts) {
      metrics_.jobs.With({std::string(JobStateName(state))}).Set(static_cast<double>(n));
    }
    metrics_.queue_depth.Set(static_cast<double>((*counts)[JobState::kQueued]));
  });
  for (const std::string& device : options_.devices) metrics_.slot_busy.With({device}).Set(0);
}

JobService::~JobService() {
  Shutdown();
  ::close(lock_fd_);
}

absl::Status JobService::Recover() {
  SR_ASSIGN_OR_RETURN(std::vector<Job> interrupted,
                      store_->ListInStates({JobState::kRunning, JobState::kUploading}));
  for (const Job& job : interrupted) {
    spdlog::info("job={} re-queued: the previous server stopped while it was {}", job.id,
                 std::string(JobStateName(job.state)));
    SR_RETURN_IF_ERROR(
        Record(job.id, StateChange{job.state, JobState::kQueued, "server restarted; resuming"})
            .status());
  }
  return absl::OkStatus();
}

void JobService::Shutdown() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, attempt] : running_) {
      if (attempt->child) attempt->child->Terminate(std::chrono::milliseconds(2000));
    }
  }
  work_cv_.notify_all();
  for (std::thread& t : slots_) t.join();
  slots_.clear();
}

std::string JobService::JobDir(const std::string& id) const {
  return JoinPath(JoinPath(options_.data_dir, "jobs"), id);
}

absl::StatusOr<JobEvent> JobService::Record(const std::string& id, const EventPayload& payload,
                                            const std::string& device) {
  absl::StatusOr<JobEvent> e = store_->Append(id, payload, NowMs(), device);
  if (!e.ok()) {
    spdlog::warn("job={} event not recorded: {}", id, e.status().ToString());
    return e;
  }
  hub_.Publish();
  if (const auto* change = std::get_if<StateChange>(&e->payload)) {
    spdlog::info("job={} attempt={} {} -> {}{}{}", id, e->attempt,
                 std::string(JobStateName(change->from)), std::string(JobStateName(change->to)),
                 change->reason.empty() ? "" : ": ", change->reason);
  }
  return e;
}

absl::StatusOr<CreateResult> JobService::Submit(const JobSpec& spec) {
  SR_RETURN_IF_ERROR(ValidateJobSpec(spec, options_.devices));
  SR_ASSIGN_OR_RETURN(EffectiveSettings settings, ResolveSettings(spec));
  SR_ASSIGN_OR_RETURN(CreateResult r, store_->Create(spec, settings.ToJson().dump(), NowMs()));
  metrics_.submissions.With({r.created ? "created" : "duplicate"}).Inc();
  if (r.created) {
    spdlog::info("job={} queued: model {} -> {}", r.job.id, spec.model_uri, spec.output_uri);
    hub_.Publish();
    WakeSlots();
  }
  return r;
}

absl::StatusOr<Job> JobService::Get(const std::string& id) {
  SR_RETURN_IF_ERROR(ValidateJobId(id));
  return store_->Get(id);
}

absl::StatusOr<ListPage> JobService::List(const ListQuery& query) { return store_->List(query); }

bool JobService::CancelRequested(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(id);
  return it != running_.end() && it->second->cancel;
}

absl::StatusOr<Job> JobService::Cancel(const std::string& id) {
  SR_RETURN_IF_ERROR(ValidateJobId(id));
  for (int tries = 0; tries < 10; ++tries) {
    SR_ASSIGN_OR_RETURN(Job job, store_->Get(id));
    if (IsTerminal(job.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " has already ended (", JobStateName(job.state), ")"));
    }
    if (job.state == JobState::kQueued) {
      absl::StatusOr<JobEvent> e =
          store_->Append(id, StateChange{JobState::kQueued, JobState::kCancelled,
                                         "cancelled by request"},
                         NowMs());
      if (!e.ok() && e.status().code() == absl::StatusCode::kFailedPrecondition) continue;
      SR_RETURN_IF_ERROR(e.status());
      hub_.Publish();
      spdlog::info("job={} cancelled while queued", id);
      RemoveTree(JobDir(id)).IgnoreError();
      return store_->Get(id);
    }
    // RUNNING or UPLOADING: the slot thread ends it once its child is gone.
    std::unique_lock<std::mutex> lock(mu_);
    auto it = running_.find(id);
    if (it == running_.end()) {
      // Claimed a moment ago and not registered yet, or just finished: look again.
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    std::shared_ptr<Attempt> attempt = it->second;
    attempt->cancel = true;
    ChildProcess* child = attempt->child.get();
    if (child != nullptr) {
      lock.unlock();
      child->Terminate(options_.cancel_grace);
      lock.lock();
    }
    ended_cv_.wait_for(lock, options_.cancel_grace + std::chrono::seconds(30),
                       [&] {
                         auto now = running_.find(id);
                         return now == running_.end() || now->second != attempt;
                       });
    lock.unlock();
    return store_->Get(id);
  }
  return absl::AbortedError(absl::StrCat("job ", id, ": its state kept changing; try again"));
}

absl::Status JobService::Watch(const std::string& id, int64_t from_sequence,
                               const std::function<bool(const JobEvent&)>& send,
                               const std::function<bool()>& stop) {
  SR_RETURN_IF_ERROR(ValidateJobId(id));
  SR_RETURN_IF_ERROR(store_->Get(id).status());
  int64_t next = std::max<int64_t>(from_sequence, 1);
  constexpr int kBatch = 500;
  while (true) {
    const uint64_t seen = hub_.version();
    SR_ASSIGN_OR_RETURN(std::vector<JobEvent> events, store_->Events(id, next, kBatch));
    for (const JobEvent& e : events) {
      if (!send(e)) return absl::CancelledError("the watcher went away");
      next = e.sequence + 1;
      if (EndsJob(e)) return absl::OkStatus();
    }
    if (static_cast<int>(events.size()) == kBatch) continue;
    if (events.empty()) {
      // Asked to start past the event that ended the job: nothing will come.
      SR_ASSIGN_OR_RETURN(Job job, store_->Get(id));
      if (IsTerminal(job.state) && next > job.last_sequence) return absl::OkStatus();
    }
    if (stop()) return absl::CancelledError("the watcher went away");
    hub_.WaitForChange(seen, std::chrono::milliseconds(250));
  }
}

void JobService::SlotLoop(const std::string& device) {
  const auto accepts = [&device](const JobSpec& spec) { return DeviceAccepts(device, spec.device); };
  while (!Stopping()) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = work_version_;
    }
    absl::StatusOr<std::optional<Job>> next = store_->NextQueued(accepts);
    if (!next.ok() || !next->has_value()) {
      if (!next.ok()) spdlog::error("slot {}: reading the queue: {}", device, next.status().ToString());
      // Woken by a submission (or a slot freeing up); the timeout is a safety net.
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait_for(lock, std::chrono::seconds(1),
                        [&] { return Stopping() || work_version_ != seen; });
      continue;
    }
    Job job = **next;
    {
      // Registered before the claim, so Cancel always finds a RUNNING job's attempt.
      std::lock_guard<std::mutex> lock(mu_);
      running_[job.id] = std::make_shared<Attempt>();
    }
    absl::StatusOr<JobEvent> claimed =
        Record(job.id, StateChange{JobState::kQueued, JobState::kRunning, ""}, device);
    if (claimed.ok()) {
      metrics_.slot_busy.With({device}).Set(1);
      absl::StatusOr<Job> fresh = store_->Get(job.id);
      RunAttempt(fresh.ok() ? *fresh : job, device);
      metrics_.slot_busy.With({device}).Set(0);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.erase(job.id);
    }
    ended_cv_.notify_all();
    WakeSlots();
  }
}

void JobService::WakeSlots() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++work_version_;
  }
  work_cv_.notify_all();
}

}  // namespace signround::jobs
