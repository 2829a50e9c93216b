// Conversions between the public API (proto/signround/v1) and the service
// core's plain structs (src/jobs/job.h). Pure functions; no validation beyond
// what the types force (the core validates).
#pragma once

#include "signround/v1/quantization_service.pb.h"
#include "src/jobs/job.h"
#include "src/store/job_store.h"

namespace signround::server {

namespace pb = ::signround::v1;

jobs::JobSpec FromProto(const pb::JobSpec& spec);
// The request's fields checked by jobs::ValidateListRequest: INVALID_ARGUMENT
// naming the field ("state: ...", "page_size: ...", "labels...", "page_token: ...").
absl::StatusOr<jobs::ListQuery> FromProto(const pb::ListJobsRequest& request);

void ToProto(const jobs::JobSpec& spec, pb::JobSpec* out);
void ToProto(const jobs::Job& job, pb::Job* out);
void ToProto(const jobs::JobEvent& event, pb::JobEvent* out);

}  // namespace signround::server
