#include "src/storage/retry.h"

#include <algorithm>
#include <thread>

namespace signround {

bool IsRetryableHttpStatus(long status) { return status >= 500 || status == 429 || status == 408; }

bool IsRetryableS3Code(const std::string& code) {
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
         code == "ServiceUnavailable";
}

bool IsRetryableTransport(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

Backoff::Backoff(const RetryPolicy& policy, uint64_t seed)
    : policy_(policy), rng_(seed), start_(std::chrono::steady_clock::now()) {}

bool Backoff::Wait() {
  if (attempts_ >= policy_.max_attempts) return false;
  const auto ceiling =
      std::min<int64_t>(policy_.cap.count(), policy_.base.count() << std::min(attempts_ - 1, 20));
  std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(ceiling, 1));
  const std::chrono::milliseconds sleep(jitter(rng_));
  if (std::chrono::steady_clock::now() + sleep - start_ > policy_.max_elapsed) return false;
  std::this_thread::sleep_for(sleep);
  ++attempts_;
  return true;
}

}  // namespace signround
