// The lease keeper of a JobService: renews the leases of this process's
// running attempts (stopping those whose lease went elsewhere or whose job was
// cancelled through another process), ends other workers' lapsed leases, and
// drains running attempts on shutdown.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/jobs/job_service.h"

namespace signround::jobs {
void JobService::LeaseKeeperLoop() {
  const auto period = std::max(options_.lease / 3, std::chrono::milliseconds(100));
  while (!Stopping()) {
    KeepLeases();
    const auto until = std::chrono::steady_clock::now() + period;
    while (!Stopping() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

void JobService::KeepLeases() {
  std::vector<std::pair<std::string, std::shared_ptr<Attempt>>> mine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, attempt] : running_) {
      if (!attempt->lost && !attempt->owner.empty()) mine.emplace_back(id, attempt);
    }
  }
  for (const auto& [id, attempt] : mine) {
    absl::StatusOr<Lease> lease =
        store_->Renew(id, attempt->owner, options_.lease.count(), NowMs());
    const bool lost = !lease.ok() && lease.status().code() == absl::StatusCode::kAborted;
    metrics_.lease_renewals.With({lease.ok() ? "renewed" : lost ? "lost" : "failed"}).Inc();
    if (lease.ok() && !lease->cancel_requested) continue;
    if (!lease.ok() && !lost) {
      // The store is unreachable: keep working; should the lease lapse meanwhile,
      // the next renewal says so.
      spdlog::warn("job={} lease not renewed: {}", id, lease.status().ToString());
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (lease.ok()) {
        if (attempt->cancel) continue;
        attempt->cancel = true;
      } else {
        attempt->lost = true;
      }
    }
    if (lease.ok()) {
      spdlog::info("job={} cancel requested through another server: stopping its worker", id);
    } else {
      spdlog::warn(
          "job={} lease lost ({}): stopping its worker; nothing more is recorded or "
          "uploaded by this process",
          id, std::string(lease.status().message()));
    }
    StopChild(attempt);
  }
  absl::StatusOr<std::vector<Job>> lapsed = store_->ExpireLeases(NowMs(), options_.max_attempts);
  if (!lapsed.ok()) {
    spdlog::warn("ending lapsed leases: {}", lapsed.status().ToString());
    return;
  }
  metrics_.leases_lapsed.Inc(static_cast<double>(lapsed->size()));
  for (const Job& job : *lapsed) {
    spdlog::warn(
        "job={} attempt={}: the lease of worker {} lapsed; the job goes back to the "
        "queue (or ends)",
        job.id, job.attempts, job.lease.worker);
  }
  if (!lapsed->empty()) {
    hub_.Publish();
    WakeSlots();
  }
}

void JobService::StopChild(const std::shared_ptr<Attempt>& attempt) {
  std::shared_ptr<ChildProcess> child;
  {
    std::lock_guard<std::mutex> lock(mu_);
    child = attempt->child;
  }
  if (child == nullptr) return;  // not started yet, or gone: the slot thread checks the flags
  const auto grace = options_.cancel_grace;
  // The child object lives as long as this thread needs it.
  std::thread([child, grace] { child->Terminate(grace); }).detach();
}

void JobService::Drain() {
  scheduler_.StopClaiming();
  std::map<std::string, int> blocks_at_start;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, attempt] : running_) blocks_at_start[id] = attempt->blocks;
  }
  if (options_.drain.count() <= 0 || blocks_at_start.empty()) return;
  spdlog::info("draining: {} running job(s) may finish their current block (up to {} s)",
               blocks_at_start.size(), options_.drain.count() / 1000.0);
  std::unique_lock<std::mutex> lock(mu_);
  ended_cv_.wait_for(lock, options_.drain, [&] {
    for (const auto& [id, blocks] : blocks_at_start) {
      auto it = running_.find(id);
      if (it != running_.end() && it->second->blocks == blocks) return false;
    }
    return true;
  });
}

}  // namespace signround::jobs
