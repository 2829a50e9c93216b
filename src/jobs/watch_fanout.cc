#include "src/jobs/watch_fanout.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "spdlog/spdlog.h"

namespace signround::jobs {
namespace {

constexpr int kBatch = 500;        // events per read
constexpr size_t kSplitAt = 2048;  // watchers of one job from which two threads deliver

}  // namespace

bool EndsJob(const JobEvent& e) {
  const auto* change = std::get_if<StateChange>(&e.payload);
  return change != nullptr && IsTerminal(change->to);
}

WatchFanout::WatchFanout(JobStore* store, EventHub* hub, std::chrono::milliseconds poll)
    : store_(store), hub_(hub), poll_(poll), thread_([this] { Loop(); }) {}

WatchFanout::~WatchFanout() { Stop(); }

uint64_t WatchFanout::Add(const std::string& job_id, int64_t from_sequence,
                          std::shared_ptr<WatchSink> sink) {
  uint64_t token;
  {
    std::lock_guard<std::mutex> lock(mu_);
    token = next_token_++;
    if (!stopping_) {
      jobs_[job_id].emplace(token, Watch{std::max<int64_t>(from_sequence, 1), false, 0, sink});
      job_of_.emplace(token, job_id);
      sink = nullptr;
    }
  }
  if (sink) {
    sink->Close(absl::UnavailableError("the server is shutting down"));
  } else {
    hub_->Publish();
  }
  return token;
}

void WatchFanout::Remove(uint64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = job_of_.find(token);
  if (it == job_of_.end()) return;
  auto job = jobs_.find(it->second);
  job->second.erase(token);
  if (job->second.empty()) jobs_.erase(job);
  job_of_.erase(it);
}

void WatchFanout::Resume(uint64_t token) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = job_of_.find(token);
    if (it == job_of_.end()) return;
    Watch& watch = jobs_[it->second][token];
    watch.paused = false;
    ++watch.resumes;
  }
  hub_->Publish();
}

void WatchFanout::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  hub_->Publish();
  if (thread_.joinable()) thread_.join();
}

size_t WatchFanout::watches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return job_of_.size();
}

uint64_t WatchFanout::store_reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reads_;
}

void WatchFanout::Loop() {
  while (true) {
    const uint64_t seen = hub_->version();
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stopping_;
    }
    const bool more = Pass();
    if (stopping) break;
    if (!more) hub_->WaitForChange(seen, poll_);
  }
  // What was stored before the stop has been delivered; the rest resume elsewhere.
  std::map<std::string, std::map<uint64_t, Watch>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(jobs_);
    job_of_.clear();
  }
  for (auto& [job_id, watches] : left) {
    for (auto& [token, watch] : watches) {
      watch.sink->Close(absl::UnavailableError(
          "the server is shutting down; watch again from sequence " + std::to_string(watch.next)));
    }
  }
}

bool WatchFanout::Pass() {
  std::vector<std::pair<std::string, int64_t>> reads;  // job, earliest sequence needed
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [job_id, watches] : jobs_) {
      int64_t from = 0;
      for (const auto& [token, watch] : watches) {
        if (!watch.paused && (from == 0 || watch.next < from)) from = watch.next;
      }
      if (from > 0) reads.emplace_back(job_id, from);
    }
  }
  bool more = false;
  for (const auto& [job_id, from] : reads) more |= DeliverJob(job_id, from);
  return more;
}

bool WatchFanout::DeliverJob(const std::string& job_id, int64_t from) {
  absl::StatusOr<std::vector<JobEvent>> read = store_->Events(job_id, from, kBatch);
  // Watches that got nothing: has the job ended before where they start?
  std::optional<absl::StatusOr<Job>> job;
  if (read.ok() && read->empty()) {
    // Nothing from the earliest start on: unless the job has ended, no watch changes.
    job = store_->Get(job_id);
    if (job->ok() && !IsTerminal((*job)->state)) {
      std::lock_guard<std::mutex> lock(mu_);
      ++reads_;
      return false;
    }
  }
  struct Target {
    bool changed() const { return got || paused || close.has_value(); }
    uint64_t token = 0;
    int64_t next = 0;
    uint64_t resumes = 0;
    std::shared_ptr<WatchSink> sink;
    bool got = false;  // events were delivered
    bool paused = false;
    std::optional<absl::Status> close;
  };
  std::vector<Target> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_;
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return false;
    for (const auto& [token, watch] : it->second) {
      if (!watch.paused) {
        Target& t = targets.emplace_back();
        t.token = token;
        t.next = watch.next;
        t.resumes = watch.resumes;
        t.sink = watch.sink;
      }
    }
  }
  std::vector<std::shared_ptr<const JobEvent>> events;
  if (read.ok()) {
    events.reserve(read->size());
    for (JobEvent& e : *read) events.push_back(std::make_shared<const JobEvent>(std::move(e)));
  }
  const auto deliver = [&](size_t begin, size_t end) {
    for (size_t k = begin; k < end; ++k) {
      Target& t = targets[k];
      if (!read.ok()) {
        t.close = read.status();
        continue;
      }
      for (const auto& e : events) {
        if (e->sequence < t.next) continue;
        if (e->sequence != t.next) break;  // a later read fills the gap (never expected)
        t.got = true;
        const bool wants_more = t.sink->Deliver(e);
        t.next = e->sequence + 1;
        if (EndsJob(*e)) {
          t.close = absl::OkStatus();
          break;
        }
        if (!wants_more) {
          t.paused = true;
          break;
        }
      }
    }
  };
  // Handing an event to a gRPC stream costs ~10 us: many streams take two threads.
  if (targets.size() >= kSplitAt && !events.empty()) {
    std::thread helper(deliver, targets.size() / 2, targets.size());
    deliver(0, targets.size() / 2);
    helper.join();
  } else {
    deliver(0, targets.size());
  }
  for (Target& t : targets) {
    if (t.changed() || events.size() == static_cast<size_t>(kBatch)) continue;
    if (!job) job = store_->Get(job_id);
    if (!job->ok()) {
      t.close = job->status();
    } else if (IsTerminal((*job)->state) && t.next > (*job)->last_sequence) {
      t.close = absl::OkStatus();
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    for (Target& t : targets) {
      if (!t.changed()) continue;
      if (it == jobs_.end() || it->second.count(t.token) == 0) {
        t.close.reset();  // removed meanwhile: its owner is gone
        continue;
      }
      if (t.close) {
        it->second.erase(t.token);
        job_of_.erase(t.token);
        continue;
      }
      Watch& watch = it->second.at(t.token);
      watch.next = t.next;
      watch.paused = t.paused && watch.resumes == t.resumes;
    }
    if (it != jobs_.end() && it->second.empty()) jobs_.erase(it);
  }
  for (Target& t : targets) {
    if (!t.close) continue;
    if (!t.close->ok()) spdlog::warn("job={} watch ended: {}", job_id, t.close->ToString());
    t.sink->Close(*t.close);
  }
  return read.ok() && events.size() == static_cast<size_t>(kBatch);
}

}  // namespace signround::jobs
