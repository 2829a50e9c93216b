// Copies between locations named by URI (file:///abs/path, s3://bucket/key, or
// a plain local path): one object, or a whole directory / key prefix (a
// checkpoint folder) in either direction.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/storage/object_store.h"
#include "src/storage/s3_store.h"

namespace signround {

// A store and a key in it. Local files are keys of a FileStore rooted at "/".
struct Location {
  std::shared_ptr<ObjectStore> store;
  std::string key;
  bool local = false;  // a FileStore: `key` is the absolute path without its leading '/'
  std::string uri;     // as given, for messages
  std::string LocalPath() const { return "/" + key; }
};

// Parses `uri` and opens its store; s3:// locations use `s3` (endpoint,
// region, credentials, tuning). INVALID_ARGUMENT naming the URI when it is malformed.
absl::StatusOr<Location> OpenLocation(absl::string_view uri, const S3Options& s3);

// Every object below `prefix` (which ends with '/' or is empty), in key order.
absl::StatusOr<std::vector<ObjectInfo>> ListAll(ObjectStore& store, const std::string& prefix);

struct CopyStats {
  int64_t files = 0;
  uint64_t bytes = 0;
};

// Copies `src` to `dst`. A source that is a directory or a key prefix (an s3
// key that is no object but has objects below "key/") is copied recursively
// below `dst`; a single object lands at `dst`, or inside it when `dst` ends
// with '/' or is an existing local directory. Keys that would escape the
// destination ("..", absolute, empty parts) are INVALID_ARGUMENT. `progress`
// sees bytes over the whole copy.
absl::StatusOr<CopyStats> Copy(const Location& src, const Location& dst,
                               const TransferProgressFn& progress);

}  // namespace signround
