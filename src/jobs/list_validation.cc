#include "src/jobs/list_validation.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/jobs/job.h"
#include "src/jobs/job_validation.h"

namespace signround::jobs {

absl::StatusOr<ListQuery> ValidateListRequest(const ListRequest& r) {
  ListQuery q;
  if (r.state != static_cast<int>(JobState::kUnspecified)) {
    if (r.state < static_cast<int>(JobState::kQueued) ||
        r.state > static_cast<int>(JobState::kCancelled)) {
      return absl::InvalidArgumentError(absl::StrCat("state: ", r.state, " is not a JobState"));
    }
    q.state = static_cast<JobState>(r.state);
  }
  if (r.page_size < 0 || r.page_size > kMaxListPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", r.page_size, " is outside 0..",
                                                   kMaxListPageSize, " (0: ", kDefaultListPageSize,
                                                   ")"));
  }
  q.page_size = r.page_size == 0 ? kDefaultListPageSize : r.page_size;
  if (r.labels.size() > static_cast<size_t>(kMaxLabels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels: ", r.labels.size(), " labels; at most ", kMaxLabels));
  }
  for (const auto& [key, value] : r.labels) {
    SR_RETURN_IF_ERROR(ValidateLabel("labels", key, value));
    q.labels[key] = value;
  }
  if (r.page_token.size() > kMaxPageTokenBytes) {
    return absl::InvalidArgumentError("page_token: not a token from ListJobs");
  }
  q.page_token = r.page_token;
  return q;
}

}  // namespace signround::jobs
