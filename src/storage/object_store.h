// Object storage behind one interface, chosen by URI scheme: file:// (a local
// directory tree) and s3:// (AWS S3 and S3-compatible servers). Every write
// is all-or-nothing: nothing appears under a final name until it is complete
// and its size (and, for S3, its hash) has been checked.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace signround {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  // Changes whenever the content does: S3's ETag (quotes kept), or for local
  // files "<mtime ns>-<size>". Empty when the store did not say.
  std::string etag;
};

struct ObjectList {
  std::vector<ObjectInfo> objects;  // in key order
  std::string next_page_token;      // empty on the last page
};

// Called as bytes move (from any thread, never concurrently): done of total.
using TransferProgressFn = std::function<void(uint64_t done, uint64_t total)>;

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // The URI of `key` in this store, for messages ("s3://bucket/key").
  virtual std::string Describe(const std::string& key) const = 0;

  // The object's size; NOT_FOUND naming it when absent.
  virtual absl::StatusOr<ObjectInfo> Head(const std::string& key) = 0;

  // Downloads `key` to the local file `path`: the bytes go to `path`.partial
  // (a download interrupted earlier resumes from it) and are renamed to `path`
  // once the size matches.
  virtual absl::Status Get(const std::string& key, const std::string& path,
                           const TransferProgressFn& progress) = 0;

  // Uploads the local file `path` as `key`.
  virtual absl::Status Put(const std::string& path, const std::string& key,
                           const TransferProgressFn& progress) = 0;

  // Up to `max_keys` objects whose keys start with `prefix`, in key order,
  // continuing after the page that returned `page_token` (empty: from the start).
  virtual absl::StatusOr<ObjectList> List(const std::string& prefix, const std::string& page_token,
                                          int max_keys) = 0;

  // Removes `key`; an absent key is not an error.
  virtual absl::Status Delete(const std::string& key) = 0;
};

}  // namespace signround
