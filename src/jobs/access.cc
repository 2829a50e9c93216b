// What a caller may name in a job: file:// paths inside --allowed-local-roots
// and, for a tenant with an S3 allow-list, only those buckets.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/status_macros.h"
#include "src/jobs/job_service.h"
#include "src/storage/storage_uri.h"

namespace signround::jobs {
namespace {

struct UriField {
  const char* name;
  const std::string* uri;
};

std::vector<UriField> UriFields(const JobSpec& spec) {
  return {{"spec.model_uri", &spec.model_uri},
          {"spec.calibration_uri", &spec.calibration_uri},
          {"spec.output_uri", &spec.output_uri}};
}

}  // namespace

absl::Status JobService::CheckLocalRoots(const JobSpec& spec) const {
  for (const UriField& f : UriFields(spec)) {
    const std::string path = FileUriPath(*f.uri);
    if (!path.empty()) SR_RETURN_IF_ERROR(options_.local_roots.Check(f.name, path));
  }
  return absl::OkStatus();
}

absl::Status JobService::CheckAccess(const JobSpec& spec, const Caller& caller) const {
  if (!caller.s3_buckets) return absl::OkStatus();
  for (const UriField& f : UriFields(spec)) {
    if (f.uri->empty()) continue;
    absl::StatusOr<StorageUri> uri = ParseStorageUri(*f.uri);
    if (!uri.ok() || uri->scheme != StorageUri::Scheme::kS3) continue;  // validated before
    if (caller.s3_buckets->count(uri->bucket) == 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          f.name, ": bucket '", uri->bucket, "' is not one tenant '", caller.tenant, "' may use (",
          caller.s3_buckets->empty() ? "none" : absl::StrJoin(*caller.s3_buckets, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace signround::jobs
