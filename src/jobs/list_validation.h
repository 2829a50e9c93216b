// ListJobs' request checks, before any query runs: the raw fields a client
// sent (no proto types here) into the store's ListQuery. Every error is
// INVALID_ARGUMENT whose message starts with the field's name:
// "page_size: 1001 is outside 0..1000 (0: 50)".
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "src/store/job_store.h"

namespace signround::jobs {

// Limits on a ListJobs request (labels: kMaxLabels, ValidateLabel).
inline constexpr int kDefaultListPageSize = 50;
inline constexpr int kMaxListPageSize = 1000;
inline constexpr size_t kMaxPageTokenBytes = 256;

// A ListJobs request as sent, unchecked.
struct ListRequest {
  int state = 0;                              // a JobState value; 0 (kUnspecified): every state
  int page_size = 0;                          // 0..kMaxListPageSize; 0: kDefaultListPageSize
  std::map<std::string, std::string> labels;  // every pair must match
  std::string page_token;                     // from ListPage::next_page_token; "": first page
};

// The query for a valid request (its tenant is left unset: the caller's access
// decides it); INVALID_ARGUMENT naming the first field that is not.
absl::StatusOr<ListQuery> ValidateListRequest(const ListRequest& request);

}  // namespace signround::jobs
