#include "src/storage/transfer.h"

#include <sys/stat.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/storage/file_store.h"
#include "src/storage/storage_uri.h"

namespace signround {
namespace {

constexpr int kListPage = 1000;

bool IsLocalDirectory(const Location& l) {
  struct stat st;
  return l.local && ::stat(l.LocalPath().c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string BaseName(const std::string& key) {
  const size_t slash = key.rfind('/');
  return slash == std::string::npos ? key : key.substr(slash + 1);
}

std::string JoinKey(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return absl::EndsWith(dir, "/") ? dir + name : absl::StrCat(dir, "/", name);
}

// A key below a copied prefix must stay below the destination.
absl::Status CheckRelative(const std::string& rel, const std::string& what) {
  for (absl::string_view part : absl::StrSplit(rel, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": key part '", rel, "' would leave the destination (empty, '.' or '..' part)"));
    }
  }
  return absl::OkStatus();
}

// One object from `src`/`src_key` to `dst`/`dst_key`.
absl::Status CopyOne(const Location& src, const std::string& src_key, const Location& dst,
                     const std::string& dst_key, const TransferProgressFn& progress) {
  if (src.local) return dst.store->Put("/" + src_key, dst_key, progress);
  if (dst.local) return src.store->Get(src_key, "/" + dst_key, progress);
  // Between two remote stores: through a temporary local file.
  char tmpl[] = "/tmp/signround-cp-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return ErrnoStatus(errno, "mkdtemp");
  const std::string tmp = JoinPath(tmpl, "object");
  absl::Status s = src.store->Get(src_key, tmp, progress);
  if (s.ok()) s = dst.store->Put(tmp, dst_key, progress);
  RemoveTree(tmpl).IgnoreError();
  return s;
}

}  // namespace

absl::StatusOr<std::vector<ObjectInfo>> ListAll(ObjectStore& store, const std::string& prefix) {
  std::vector<ObjectInfo> out;
  std::string token;
  do {
    SR_ASSIGN_OR_RETURN(ObjectList page, store.List(prefix, token, kListPage));
    for (ObjectInfo& o : page.objects) out.push_back(std::move(o));
    token = page.next_page_token;
  } while (!token.empty());
  return out;
}

absl::StatusOr<Location> OpenLocation(absl::string_view uri, const S3Options& s3) {
  SR_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  Location l;
  l.uri = std::string(uri);
  if (parsed.scheme == StorageUri::Scheme::kS3) {
    l.store = std::make_shared<S3Store>(parsed.bucket, s3);
    l.key = parsed.key;
  } else {
    l.store = std::make_shared<FileStore>("/");
    l.local = true;
    std::string path = parsed.path;
    while (absl::StartsWith(path, "/")) path.erase(0, 1);
    l.key = path;
  }
  return l;
}

absl::StatusOr<CopyStats> Copy(const Location& src, const Location& dst,
                               const TransferProgressFn& progress) {
  // A single object?
  bool directory = src.key.empty() || absl::EndsWith(src.key, "/") || IsLocalDirectory(src);
  if (!directory) {
    absl::StatusOr<ObjectInfo> info = src.store->Head(src.key);
    if (info.ok()) {
      std::string dst_key = dst.key;
      if (dst_key.empty() || absl::EndsWith(dst_key, "/") || IsLocalDirectory(dst)) {
        dst_key = JoinKey(dst_key, BaseName(src.key));
      }
      SR_RETURN_IF_ERROR(CopyOne(src, src.key, dst, dst_key, progress));
      return CopyStats{1, info->size};
    }
    if (!absl::IsNotFound(info.status())) return info.status();
    if (src.local) return info.status();
  }
  // A directory or key prefix.
  std::string prefix = src.key;
  if (!prefix.empty() && !absl::EndsWith(prefix, "/")) prefix += "/";
  absl::StatusOr<std::vector<ObjectInfo>> listed = ListAll(*src.store, prefix);
  if (!listed.ok() && !directory && absl::IsNotFound(listed.status())) {
    return src.store->Head(src.key).status();  // the object's own error (no such bucket, ...)
  }
  SR_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, std::move(listed));
  if (objects.empty()) {
    return absl::NotFoundError(absl::StrCat(src.uri, ": no such object or directory"));
  }
  CopyStats stats;
  uint64_t total = 0;
  for (const ObjectInfo& o : objects) total += o.size;
  for (const ObjectInfo& o : objects) {
    const std::string rel = o.key.substr(prefix.size());
    SR_RETURN_IF_ERROR(CheckRelative(rel, src.store->Describe(o.key)));
    const uint64_t before = stats.bytes;
    TransferProgressFn each;
    if (progress) each = [&](uint64_t done, uint64_t) { progress(before + done, total); };
    SR_RETURN_IF_ERROR(CopyOne(src, o.key, dst, JoinKey(dst.key, rel), each));
    stats.files += 1;
    stats.bytes += o.size;
  }
  return stats;
}

}  // namespace signround
