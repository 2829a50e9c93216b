// The s3:// backend: AWS S3 and S3-compatible servers (MinIO, Ceph, Swift's
// s3api) over HTTP(S) with Signature V4. Payloads are signed with their
// SHA-256 (the server rejects a body that does not match); large uploads go
// multipart with parallel parts and are aborted on failure; downloads resume
// with Range requests and are checked by size (and MD5 against a single-part
// ETag). Transport failures, 5xx, 429 and SlowDown are retried with
// exponential backoff and jitter, bounded by attempts and time.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "src/storage/credentials.h"
#include "src/storage/object_store.h"
#include "src/storage/retry.h"

namespace signround {

struct S3Options {
  // "http://127.0.0.1:9000"; empty for AWS (https://s3.REGION.amazonaws.com).
  std::string endpoint;
  std::string region = "us-east-1";
  // Path-style (ENDPOINT/BUCKET/KEY) or virtual-hosted (BUCKET.HOST/KEY)
  // addressing. Unset: path-style when an endpoint is given, as MinIO, Ceph
  // and Swift expect; virtual-hosted on AWS.
  std::optional<bool> path_style;
  AwsCredentials credentials;
  uint64_t multipart_threshold = 64ull << 20;
  uint64_t part_size = 16ull << 20;
  int parallel_parts = 4;
  RetryPolicy retry;
  // Receives one line per retry (never a secret or a signature).
  std::function<void(const std::string&)> log;
};

class S3Store : public ObjectStore {
 public:
  S3Store(std::string bucket, S3Options options);

  std::string Describe(const std::string& key) const override;
  absl::StatusOr<ObjectInfo> Head(const std::string& key) override;
  absl::Status Get(const std::string& key, const std::string& path,
                   const TransferProgressFn& progress) override;
  absl::Status Put(const std::string& path, const std::string& key,
                   const TransferProgressFn& progress) override;
  absl::StatusOr<ObjectList> List(const std::string& prefix, const std::string& page_token,
                                  int max_keys) override;
  absl::Status Delete(const std::string& key) override;

  // Creates the bucket (in the configured region); one we already own is fine.
  absl::Status CreateBucket();

  // Requests retried so far.
  int64_t retries() const { return retries_.load(); }

 private:
  struct Call;
  class Session;
  absl::Status PutMultipart(int fd, uint64_t size, const std::string& key,
                            const TransferProgressFn& progress);
  // PutMultipart's steps. Create returns the upload id.
  absl::StatusOr<std::string> CreateMultipartUpload(Session& session, const std::string& key);
  // Sends every part, options_.parallel_parts at a time, into etags (one per
  // part, in order); the first failure stops the rest.
  absl::Status UploadParts(int fd, uint64_t size, const std::string& key,
                           const std::string& upload_id, const TransferProgressFn& progress,
                           std::vector<std::string>& etags);
  // Part `index` (from 0): bytes [offset, offset + length) of fd; returns its ETag.
  absl::StatusOr<std::string> UploadPart(Session& session, int fd, const std::string& key,
                                         const std::string& upload_id, int index, uint64_t offset,
                                         uint64_t length, TransferProgressFn progress);
  // OK once the object exists (also when a retried Complete finds it done).
  absl::Status CompleteMultipartUpload(Session& session, const std::string& key, uint64_t size,
                                       const std::string& upload_id,
                                       const std::vector<std::string>& etags);
  // Deletes the upload's parts after `failure`, which it returns (noting when
  // the abort failed too).
  absl::Status AbortMultipartUpload(Session& session, const std::string& key,
                                    const std::string& upload_id, absl::Status failure);

  std::string bucket_;
  S3Options options_;
  std::atomic<int64_t> retries_{0};
  std::atomic<uint64_t> seed_{1};
};

}  // namespace signround
