#include "src/storage/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

namespace fs = std::filesystem;

constexpr size_t kCopyBuffer = 1 << 20;

// ObjectInfo::etag of a local file: its modification time and size.
std::string LocalEtag(const struct stat& st) {
  return absl::StrCat(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                      "-", static_cast<int64_t>(st.st_size));
}

// A key is a relative path of plain names: no empty, "." or ".." segment.
absl::Status CheckKey(const std::string& key) {
  if (key.empty()) return absl::InvalidArgumentError("file://: empty object key");
  for (absl::string_view part : absl::StrSplit(key, '/')) {
    if (part.empty() || part == "." || part == ".." || part.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "file:///", key, ": a key must be a path of plain names (no empty, '.' or '..' part)"));
    }
  }
  return absl::OkStatus();
}

std::string ParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

absl::Status CopyFileAtomically(const std::string& from, const std::string& to,
                                const TransferProgressFn& progress) {
  uint64_t size = 0;
  SR_ASSIGN_OR_RETURN(int fd, OpenRegularFile(from, &size));
  SR_RETURN_IF_ERROR(MakeDirectories(ParentDir(to)));
  AtomicFileWriter out(to);
  absl::Status status = out.Open();
  std::vector<char> buffer(kCopyBuffer);
  uint64_t done = 0;
  while (status.ok()) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) status = ErrnoStatus(errno, from);
    if (n <= 0) break;
    status = out.Write(absl::string_view(buffer.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
    if (progress) progress(done, size);
  }
  ::close(fd);
  SR_RETURN_IF_ERROR(status);
  if (done != size) {
    return absl::DataLossError(
        absl::StrCat(from, ": read ", done, " bytes but the file had ", size, " (it changed)"));
  }
  return out.Commit();
}

std::string FileStore::Describe(const std::string& key) const {
  return absl::StrCat("file://", JoinPath(root_, key));
}

absl::StatusOr<std::string> FileStore::PathOf(const std::string& key) const {
  SR_RETURN_IF_ERROR(CheckKey(key));
  return JoinPath(root_, key);
}

absl::StatusOr<ObjectInfo> FileStore::Head(const std::string& key) {
  SR_ASSIGN_OR_RETURN(std::string path, PathOf(key));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(Describe(key), ": no such object"));
    }
    return ErrnoStatus(errno, Describe(key));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat(Describe(key), ": not a file"));
  }
  return ObjectInfo{key, static_cast<uint64_t>(st.st_size), LocalEtag(st)};
}

absl::Status FileStore::Get(const std::string& key, const std::string& path,
                            const TransferProgressFn& progress) {
  SR_ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
  SR_ASSIGN_OR_RETURN(std::string from, PathOf(info.key));
  return CopyFileAtomically(from, path, progress);
}

absl::Status FileStore::Put(const std::string& path, const std::string& key,
                            const TransferProgressFn& progress) {
  SR_ASSIGN_OR_RETURN(std::string to, PathOf(key));
  return CopyFileAtomically(path, to, progress);
}

absl::StatusOr<ObjectList> FileStore::List(const std::string& prefix, const std::string& page_token,
                                           int max_keys) {
  // Walk the deepest directory the prefix names; keep regular files whose key matches.
  const size_t slash = prefix.rfind('/');
  const std::string dir_key = slash == std::string::npos ? "" : prefix.substr(0, slash);
  const std::string dir = dir_key.empty() ? root_ : JoinPath(root_, dir_key);
  std::vector<std::string> keys;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      return ObjectList{};
    }
    return ErrnoStatus(ec.value(), absl::StrCat("file://", dir));
  }
  const std::string root_prefix = root_ == "/" ? "/" : root_ + "/";
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return ErrnoStatus(ec.value(), absl::StrCat("file://", dir));
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    const std::string path = it->path().string();
    if (!absl::StartsWith(path, root_prefix)) continue;
    std::string key = path.substr(root_prefix.size());
    if (absl::StartsWith(key, prefix) && key > page_token) keys.push_back(std::move(key));
  }
  std::sort(keys.begin(), keys.end());
  ObjectList out;
  for (const std::string& key : keys) {
    if (static_cast<int>(out.objects.size()) == max_keys) {
      out.next_page_token = out.objects.back().key;
      break;
    }
    struct stat st;
    if (::stat(JoinPath(root_, key).c_str(), &st) != 0) continue;  // removed meanwhile
    out.objects.push_back({key, static_cast<uint64_t>(st.st_size), LocalEtag(st)});
  }
  return out;
}

absl::Status FileStore::Delete(const std::string& key) {
  SR_ASSIGN_OR_RETURN(std::string path, PathOf(key));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, Describe(key));
  return absl::OkStatus();
}

}  // namespace signround
