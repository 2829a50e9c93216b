#include "src/jobs/job_service.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"
#include "src/attempts/checkpoint_mirror.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/jobs/job_validation.h"
#include "src/store/postgres_db.h"

namespace signround::jobs {
namespace {

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

// "sqlite:PATH" or "postgres://..." (never echoed whole: it may hold a password).
absl::StatusOr<std::unique_ptr<JobStore>> OpenStore(const JobServiceOptions& o) {
  // The default store lives in the data directory, which role api does not lock (or make).
  if (o.store.empty()) SR_RETURN_IF_ERROR(MakeDirectories(o.data_dir));
  const std::string uri =
      o.store.empty() ? absl::StrCat("sqlite:", JoinPath(o.data_dir, "signround.db")) : o.store;
  if (absl::StartsWith(uri, "sqlite:")) {
    const std::string path = uri.substr(7);
    if (path.empty()) return absl::InvalidArgumentError("--store: sqlite: needs a file path");
    return JobStore::Open(path);
  }
  if (absl::StartsWith(uri, "postgres://") || absl::StartsWith(uri, "postgresql://")) {
    SR_ASSIGN_OR_RETURN(std::unique_ptr<sql::Database> db, OpenPostgres(uri));
    return JobStore::Open(std::move(db));
  }
  return absl::InvalidArgumentError(
      "--store: must be sqlite:PATH or postgres://[USER@]HOST[:PORT]/DBNAME");
}

std::string DefaultWorkerName(const std::string& data_dir) {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "localhost");
  char* abs = ::realpath(data_dir.c_str(), nullptr);
  std::string dir = abs != nullptr ? abs : data_dir;
  std::free(abs);
  return absl::StrCat(host, ":", dir);
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobService>> JobService::Start(JobServiceOptions options,
                                                              metrics::Registry& registry) {
  if (options.run_slots && options.devices.empty()) {
    return absl::InvalidArgumentError("devices: none given");
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("max_attempts: must be at least 1");
  }
  if (options.lease < std::chrono::milliseconds(300)) {
    return absl::InvalidArgumentError("lease: must be at least 0.3 s");
  }
  int lock_fd = -1;
  if (options.run_slots) {
    SR_ASSIGN_OR_RETURN(lock_fd, LockDataDir(options.data_dir));
    if (options.worker_name.empty()) options.worker_name = DefaultWorkerName(options.data_dir);
  } else {
    options.devices.clear();
  }
  absl::StatusOr<std::unique_ptr<JobStore>> store = OpenStore(options);
  if (!store.ok()) {
    if (lock_fd >= 0) ::close(lock_fd);
    return store.status();
  }
  std::unique_ptr<JobService> service(
      new JobService(std::move(options), *std::move(store), lock_fd, registry));
  if (service->options_.run_slots) SR_RETURN_IF_ERROR(service->Recover());
  service->scheduler_.Start();
  service->lease_keeper_ = std::thread([s = service.get()] { s->LeaseKeeperLoop(); });
  return service;
}

JobService::JobService(JobServiceOptions options, std::unique_ptr<JobStore> store, int lock_fd,
                       metrics::Registry& registry)
    : options_(std::move(options)),
      store_(std::move(store)),
      lock_fd_(lock_fd),
      cache_(JoinPath(options_.data_dir, "cache"), options_.s3),
      metrics_(registry),
      scheduler_(
          options_.devices, [this](const std::string& device) { return ClaimFor(device); },
          [this](const Job& job, const std::string& device) { RunClaimed(job, device); }) {
  std::random_device random;
  instance_ = absl::StrCat(options_.worker_name, "/", absl::Hex(random(), absl::kZeroPad8));
  registry.AddCollector([this] {
    absl::StatusOr<std::map<JobState, int64_t>> counts = store_->CountByState();
    if (!counts.ok()) return;
    for (const auto& [state, n] : *counts) {
      metrics_.jobs.With({std::string(JobStateName(state))}).Set(static_cast<double>(n));
    }
    metrics_.queue_depth.Set(static_cast<double>((*counts)[JobState::kQueued]));
  });
  registry.AddCollector(
      [this] { metrics_.watch_streams.Set(static_cast<double>(fanout_.watches())); });
  for (const std::string& device : options_.devices) metrics_.slot_busy.With({device}).Set(0);
}

JobService::~JobService() {
  Shutdown();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::Status JobService::Recover() {
  // This worker name's previous process is gone (the data directory's lock
  // says so): its jobs need not wait for their leases to lapse.
  SR_ASSIGN_OR_RETURN(std::vector<Job> jobs,
                      store_->ExpireLeases(NowMs(), options_.max_attempts, options_.worker_name));
  for (const Job& job : jobs) {
    spdlog::info("job={} re-queued: the previous process of worker {} stopped while it was {}",
                 job.id, options_.worker_name, std::string(JobStateName(job.state)));
  }
  if (!jobs.empty()) hub_.Publish();
  return absl::OkStatus();
}

void JobService::Shutdown() {
  if (Stopping()) return;
  Drain();
  scheduler_.Stop();
  std::vector<std::shared_ptr<ChildProcess>> children;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, attempt] : running_) {
      if (attempt->child) children.push_back(attempt->child);
    }
  }
  for (const auto& child : children) child->Terminate(std::chrono::milliseconds(2000));
  scheduler_.Join();
  if (lease_keeper_.joinable()) lease_keeper_.join();
  fanout_.Stop();  // delivers the last events, then ends the open watches
}

std::string JobService::JobDir(const std::string& id) const {
  return JoinPath(JoinPath(options_.data_dir, "jobs"), id);
}

absl::StatusOr<JobEvent> JobService::Record(const std::string& id, const EventPayload& payload,
                                            const std::string& device, const std::string& owner) {
  absl::StatusOr<JobEvent> e = store_->Append(id, payload, NowMs(), device, owner);
  if (!e.ok()) {
    spdlog::warn("job={} event not recorded: {}", id, e.status().ToString());
    if (e.status().code() == absl::StatusCode::kAborted && !owner.empty()) {
      if (std::shared_ptr<Attempt> attempt = FindAttempt(id)) {
        std::lock_guard<std::mutex> lock(mu_);
        attempt->lost = true;
      }
    }
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

int64_t JobService::NowMs() { return absl::ToUnixMillis(absl::Now()); }

absl::StatusOr<CreateResult> JobService::Submit(const JobSpec& spec, const Caller& caller) {
  SR_RETURN_IF_ERROR(CheckLocalRoots(spec));  // first: a '..' path outside is PERMISSION_DENIED
  SR_RETURN_IF_ERROR(ValidateJobSpec(spec, options_.devices));
  SR_RETURN_IF_ERROR(CheckAccess(spec, caller));
  SR_ASSIGN_OR_RETURN(EffectiveSettings settings, ResolveSettings(spec));
  CreateOptions create{caller.tenant, options_.max_queued_jobs_per_tenant};
  SR_ASSIGN_OR_RETURN(CreateResult r,
                      store_->Create(spec, settings.ToJson().dump(), NowMs(), create));
  metrics_.submissions.With({r.created ? "created" : "duplicate"}).Inc();
  if (r.created) {
    spdlog::info("job={} queued{}: model {} -> {}", r.job.id,
                 caller.tenant.empty() ? "" : " for tenant " + caller.tenant, spec.model_uri,
                 spec.output_uri);
    hub_.Publish();
    WakeSlots();
  }
  return r;
}

namespace {

// Another tenant's job is reported exactly as an unknown id is.
absl::Status CheckVisible(const Job& job, const Caller& caller) {
  if (caller.admin || job.tenant == caller.tenant) return absl::OkStatus();
  return JobNotFoundError(job.id);
}

}  // namespace

absl::StatusOr<Job> JobService::Get(const std::string& id, const Caller& caller) {
  SR_RETURN_IF_ERROR(ValidateJobId(id));
  SR_ASSIGN_OR_RETURN(Job job, store_->Get(id));
  SR_RETURN_IF_ERROR(CheckVisible(job, caller));
  return job;
}

absl::StatusOr<ListPage> JobService::List(ListQuery query, const Caller& caller) {
  if (!caller.admin) query.tenant = caller.tenant;
  return store_->List(query);
}

absl::StatusOr<std::vector<JobEvent>> JobService::Events(const std::string& id,
                                                         int64_t from_sequence, int limit,
                                                         const Caller& caller) {
  if (limit < 1 || limit > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("limit: ", limit, " is outside 1..1000"));
  }
  SR_RETURN_IF_ERROR(Get(id, caller).status());
  return store_->Events(id, from_sequence, limit);
}

std::shared_ptr<JobService::Attempt> JobService::FindAttempt(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(id);
  return it == running_.end() ? nullptr : it->second;
}

bool JobService::CancelRequested(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(id);
  return it != running_.end() && it->second->cancel;
}

bool JobService::LeaseLost(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(id);
  return it != running_.end() && it->second->lost;
}

absl::StatusOr<Job> JobService::Cancel(const std::string& id, const Caller& caller) {
  SR_RETURN_IF_ERROR(Get(id, caller).status());
  SR_ASSIGN_OR_RETURN(Job job, store_->RequestCancel(id, NowMs()));
  hub_.Publish();
  if (IsTerminal(job.state)) {
    spdlog::info("job={} cancelled while queued", id);
    RemoveTree(JobDir(id)).IgnoreError();
    if (job.attempts > 0) DeleteCheckpoints(job.spec.output_uri, options_.s3).IgnoreError();
    return job;
  }
  // Running here: stop the child now. Running elsewhere: its worker sees the
  // request at its next heartbeat. Either way the job ends once the child is gone.
  if (std::shared_ptr<Attempt> attempt = FindAttempt(id)) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt->cancel = true;
    }
    StopChild(attempt);
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.cancel_grace + options_.lease +
                        std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const uint64_t seen = hub_.version();
    SR_ASSIGN_OR_RETURN(job, store_->Get(id));
    if (IsTerminal(job.state)) break;
    hub_.WaitForChange(seen, std::chrono::milliseconds(250));
  }
  return job;
}

absl::StatusOr<std::unique_ptr<JobService::WatchHandle>> JobService::Watch(
    const std::string& id, int64_t from_sequence, std::shared_ptr<WatchSink> sink,
    const Caller& caller) {
  SR_RETURN_IF_ERROR(Get(id, caller).status());
  {
    std::lock_guard<std::mutex> lock(mu_);
    int& open = watches_[caller.tenant];
    if (options_.max_watches_per_tenant > 0 && open >= options_.max_watches_per_tenant) {
      return absl::ResourceExhaustedError(absl::StrCat(
          caller.tenant.empty() ? "this server" : absl::StrCat("tenant '", caller.tenant, "'"),
          " has ", open,
          " watches open on this server, the most --max-watches-per-tenant "
          "allows; close one first"));
    }
    ++open;
  }
  std::unique_ptr<WatchHandle> handle(new WatchHandle(this, caller.tenant));
  handle->token_ = fanout_.Add(id, from_sequence, std::move(sink));
  return handle;
}

JobService::WatchHandle::~WatchHandle() {
  service_->fanout_.Remove(token_);
  std::lock_guard<std::mutex> lock(service_->mu_);
  if (--service_->watches_[tenant_] == 0) service_->watches_.erase(tenant_);
}

void JobService::WatchHandle::Resume() { service_->fanout_.Resume(token_); }

absl::StatusOr<std::optional<Job>> JobService::ClaimFor(const std::string& device) {
  const auto accepts = [&device](const JobSpec& spec) {
    return DeviceAccepts(device, spec.device);
  };
  ClaimRequest request{device, options_.worker_name, instance_, options_.lease.count(), NowMs()};
  return store_->Claim(request, accepts);
}

void JobService::RunClaimed(const Job& job, const std::string& device) {
  hub_.Publish();
  spdlog::info("job={} attempt={} QUEUED -> RUNNING on {} (lease {})", job.id, job.attempts, device,
               job.lease.owner);
  auto attempt = std::make_shared<Attempt>();
  attempt->owner = job.lease.owner;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_[job.id] = attempt;
  }
  metrics_.slot_busy.With({device}).Set(1);
  RunAttempt(job, device);
  metrics_.slot_busy.With({device}).Set(0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(job.id);
  }
  ended_cv_.notify_all();
}

}  // namespace signround::jobs
