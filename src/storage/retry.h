// When and how long to wait before trying a request again: exponential
// backoff with full jitter, bounded by attempts and by total time.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "absl/status/status.h"

namespace signround {

struct RetryPolicy {
  int max_attempts = 10;                                  // first try included
  std::chrono::milliseconds base{100};                    // first backoff ceiling
  std::chrono::milliseconds cap{5000};                    // largest backoff ceiling
  std::chrono::milliseconds max_elapsed{10 * 60 * 1000};  // no new attempt after this
};

// True for an HTTP status worth retrying: 5xx, 429, and 408.
bool IsRetryableHttpStatus(long status);

// True for an S3 error code worth retrying even under a 4xx status.
bool IsRetryableS3Code(const std::string& code);

// True for transport failures (refused, reset, timeout): UNAVAILABLE, DEADLINE_EXCEEDED.
bool IsRetryableTransport(const absl::Status& status);

// Tracks one request's attempts.
class Backoff {
 public:
  explicit Backoff(const RetryPolicy& policy, uint64_t seed);

  // Sleeps before the next attempt and returns true, or returns false when the
  // attempts or the time are used up.
  bool Wait();
  int attempts() const { return attempts_; }

 private:
  RetryPolicy policy_;
  std::mt19937_64 rng_;
  std::chrono::steady_clock::time_point start_;
  int attempts_ = 1;
};

}  // namespace signround
