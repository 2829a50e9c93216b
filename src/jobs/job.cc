#include "src/jobs/job.h"

#include "absl/strings/ascii.h"

namespace signround::jobs {

absl::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kUploading:
      return "UPLOADING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
    case JobState::kUnspecified:
      break;
  }
  return "UNSPECIFIED";
}

std::optional<JobState> ParseJobState(absl::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kUploading,
                     JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    if (upper == JobStateName(s)) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

}  // namespace signround::jobs
