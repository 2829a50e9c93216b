// The file:// backend: keys are paths below a root directory. Writes go to a
// temporary name beside the target, are fsynced and renamed, so a partial
// file never appears under the final name.
#pragma once

#include <string>

#include "src/storage/object_store.h"

namespace signround {

class FileStore : public ObjectStore {
 public:
  // Keys are relative paths below `root` (an absolute directory path).
  explicit FileStore(std::string root) : root_(std::move(root)) {}

  std::string Describe(const std::string& key) const override;
  absl::StatusOr<ObjectInfo> Head(const std::string& key) override;
  absl::Status Get(const std::string& key, const std::string& path,
                   const TransferProgressFn& progress) override;
  absl::Status Put(const std::string& path, const std::string& key,
                   const TransferProgressFn& progress) override;
  absl::StatusOr<ObjectList> List(const std::string& prefix, const std::string& page_token,
                                  int max_keys) override;
  absl::Status Delete(const std::string& key) override;

 private:
  absl::StatusOr<std::string> PathOf(const std::string& key) const;
  std::string root_;
};

// Copies the local file `from` to `to` (temporary name, fsync, rename),
// creating `to`'s directory; reports progress.
absl::Status CopyFileAtomically(const std::string& from, const std::string& to,
                                const TransferProgressFn& progress);

}  // namespace signround
