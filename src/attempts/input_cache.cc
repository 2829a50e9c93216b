#include "src/attempts/input_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/storage/sigv4.h"
#include "src/storage/transfer.h"

namespace signround::jobs {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string RandomSuffix() {
  std::random_device rd;
  return absl::StrCat(absl::Hex(rd(), absl::kZeroPad8));
}

}  // namespace

absl::StatusOr<std::string> InputCache::FetchDirectory(const std::string& uri) {
  return Fetch(uri, /*directory=*/true);
}

absl::StatusOr<std::string> InputCache::FetchFile(const std::string& uri) {
  return Fetch(uri, /*directory=*/false);
}

absl::StatusOr<std::string> InputCache::Fetch(const std::string& uri, bool directory) {
  SR_ASSIGN_OR_RETURN(Location src, OpenLocation(uri, s3_));
  if (src.local) {
    const std::string path = src.LocalPath();
    if (directory ? !IsDirectory(path) : !IsRegularFile(path)) {
      return absl::NotFoundError(
          absl::StrCat(uri, ": no such ", directory ? "directory" : "file"));
    }
    return path;
  }
  // The cache key: the URI and what is there now.
  Sha256 key;
  key.Update(uri);
  if (directory) {
    std::string prefix = src.key;
    if (!prefix.empty() && prefix.back() != '/') prefix += '/';
    SR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(*src.store, prefix));
    if (objects.empty()) return absl::NotFoundError(absl::StrCat(uri, ": no objects below it"));
    for (const ObjectInfo& o : objects) key.Update(absl::StrCat("\n", o.key, " ", o.size, " ", o.etag));
  } else {
    SR_ASSIGN_OR_RETURN(ObjectInfo o, src.store->Head(src.key));
    key.Update(absl::StrCat("\n", o.size, " ", o.etag));
  }
  const std::string name = key.FinalHex();
  const std::string final_path = JoinPath(dir_, name);
  if (directory ? IsDirectory(final_path) : IsRegularFile(final_path)) return final_path;

  SR_RETURN_IF_ERROR(MakeDirectories(dir_));
  // Downloaded beside the final name, then renamed: a fetch cut short leaves
  // only a ".partial" entry, which the next start of the server removes.
  const std::string staging = JoinPath(dir_, absl::StrCat(".", name, ".", RandomSuffix(), ".partial"));
  SR_ASSIGN_OR_RETURN(Location dst,
                      OpenLocation(absl::StrCat("file://", staging, directory ? "/" : ""), s3_));
  absl::StatusOr<CopyStats> copied = Copy(src, dst, nullptr);
  if (!copied.ok()) {
    RemoveTree(staging).IgnoreError();
    return copied.status();
  }
  if (std::rename(staging.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    RemoveTree(staging).IgnoreError();
    // Another job fetched the same input meanwhile: use its copy.
    if (directory ? IsDirectory(final_path) : IsRegularFile(final_path)) return final_path;
    return ErrnoStatus(err, absl::StrCat("rename to ", final_path));
  }
  return final_path;
}

}  // namespace signround::jobs
