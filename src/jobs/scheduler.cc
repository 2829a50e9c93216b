#include "src/jobs/scheduler.h"

#include <chrono>
#include <utility>

#include "spdlog/spdlog.h"

namespace signround::jobs {

Scheduler::Scheduler(std::vector<std::string> devices, ClaimFn claim, RunFn run)
    : devices_(std::move(devices)), claim_(std::move(claim)), run_(std::move(run)) {}

Scheduler::~Scheduler() {
  Stop();
  Join();
}

void Scheduler::Start() {
  for (const std::string& device : devices_) {
    slots_.emplace_back([this, device] { SlotLoop(device); });
  }
}

void Scheduler::Join() {
  work_cv_.notify_all();
  for (std::thread& t : slots_) t.join();
  slots_.clear();
}

void Scheduler::SlotLoop(const std::string& device) {
  while (!stopping()) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = work_version_;
    }
    // Nothing claimed while draining (not an error: a default StatusOr would be UNKNOWN).
    absl::StatusOr<std::optional<Job>> claimed = std::optional<Job>();
    if (!draining_.load()) claimed = claim_(device);
    if (!claimed.ok() || !claimed->has_value()) {
      if (!claimed.ok()) {
        spdlog::error("slot {}: claiming a job: {}", device, claimed.status().ToString());
      }
      // Woken by a submission here (or a slot freeing up); jobs submitted to
      // other processes are found by the timeout.
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait_for(lock, std::chrono::seconds(1),
                        [&] { return stopping() || work_version_ != seen; });
      continue;
    }
    const Job job = **claimed;
    run_(job, device);
    Wake();
  }
}

void Scheduler::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++work_version_;
  }
  work_cv_.notify_all();
}

}  // namespace signround::jobs
