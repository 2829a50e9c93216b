// Local copies of a job's inputs (the model directory and the calibration
// file). Remote inputs (s3://) are downloaded once into the cache directory,
// keyed by the URI and every object's ETag, so a changed model is fetched
// again and an unchanged one is reused by later jobs and retried attempts.
// Local inputs (file://) are used in place.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "src/storage/s3_store.h"

namespace signround::jobs {

class InputCache {
 public:
  InputCache(std::string dir, S3Options s3) : dir_(std::move(dir)), s3_(std::move(s3)) {}

  // A local directory with the checkpoint at `uri` (a directory or key prefix).
  // NOT_FOUND / INVALID_ARGUMENT naming the URI when there is nothing there.
  absl::StatusOr<std::string> FetchDirectory(const std::string& uri);

  // A local file with the object at `uri`.
  absl::StatusOr<std::string> FetchFile(const std::string& uri);

 private:
  absl::StatusOr<std::string> Fetch(const std::string& uri, bool directory);
  std::string dir_;
  S3Options s3_;
};

}  // namespace signround::jobs
