// WatchJob's fan-out: one reader of the job store for every open watch of this process.
//
// Each job with watchers is read once per change (the event hub moves) or per poll period
// (for events that other processes store), from the earliest sequence any of its active
// watchers still needs, and every event read is handed to each watcher that needs it, in
// order and without gaps. A watch holds no thread: sinks take events without blocking,
// and a sink that has enough queued says so and is left behind until it resumes; its
// events are then read again from the store. A slow stream never holds up the others.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "src/jobs/event_hub.h"
#include "src/jobs/job.h"
#include "src/store/job_store.h"

namespace signround::jobs {

// True for the event that ends a job (a StateChange into SUCCEEDED, FAILED or CANCELLED).
bool EndsJob(const JobEvent& e);

// Where a watch's events go. Called by the fan-out's threads, never twice at once for one sink.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // The watch's next event (the previous sequence + 1; the first is the watch's start).
  // Returns false when the sink wants no more for now: it calls WatchFanout::Resume when
  // it does again.
  virtual bool Deliver(const std::shared_ptr<const JobEvent>& event) = 0;
  // The watch is over, once: OK after the event that ended the job (or at once when the
  // watch starts past it), UNAVAILABLE when the fan-out stops, or the store's error.
  virtual void Close(const absl::Status& status) = 0;
};

class WatchFanout {
 public:
  // `store` and `hub` outlive the fan-out; the hub wakes it (Add and Resume publish on it
  // too). Starts its thread.
  WatchFanout(JobStore* store, EventHub* hub, std::chrono::milliseconds poll);
  ~WatchFanout();  // Stop()
  WatchFanout(const WatchFanout&) = delete;
  WatchFanout& operator=(const WatchFanout&) = delete;

  // Feeds `sink` job `job_id`'s events from `from_sequence` (>= 1) on; returns the watch's
  // token. After Stop the sink is closed UNAVAILABLE at once.
  uint64_t Add(const std::string& job_id, int64_t from_sequence, std::shared_ptr<WatchSink> sink);
  // Ends a watch without closing its sink; a Deliver or Close already under way may still
  // reach it. Unknown or ended tokens are ignored.
  void Remove(uint64_t token);
  // The sink of `token` takes events again.
  void Resume(uint64_t token);
  // Delivers what is stored, then closes every watch UNAVAILABLE and joins the thread.
  void Stop();

  size_t watches() const;
  uint64_t store_reads() const;  // Events() queries made so far

 private:
  struct Watch {
    int64_t next;  // the next sequence it needs
    bool paused = false;
    uint64_t resumes = 0;  // Resume calls: one during a delivery cancels its pause
    std::shared_ptr<WatchSink> sink;
  };
  void Loop();
  // One read per job with active watchers, delivered; true when a read was full (more is
  // stored than one read returns).
  bool Pass();
  bool DeliverJob(const std::string& job_id, int64_t from);

  JobStore* const store_;
  EventHub* const hub_;
  const std::chrono::milliseconds poll_;

  mutable std::mutex mu_;
  std::map<std::string, std::map<uint64_t, Watch>> jobs_;  // job id -> token -> watch
  std::map<uint64_t, std::string> job_of_;                 // token -> job id
  uint64_t next_token_ = 1;
  uint64_t reads_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace signround::jobs
