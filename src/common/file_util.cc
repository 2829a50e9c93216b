#include "src/common/file_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace signround {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case EISDIR:
    case EINVAL:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::StatusOr<int> OpenRegularFile(const std::string& path, uint64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes) {
  uint64_t size = 0;
  absl::StatusOr<int> opened = OpenRegularFile(path, &size);
  if (!opened.ok()) return opened.status();
  int fd = *opened;
  if (size > max_bytes) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": file is ", size, " bytes, over the limit of ", max_bytes));
  }
  std::string out(static_cast<size_t>(size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, path);
    }
    if (n == 0) break;  // The file shrank while we read it.
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

std::string TempPathFor(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(path, ".tmp-", ::getpid(), "-", counter.fetch_add(1));
}

AtomicFileWriter::AtomicFileWriter(std::string path)
    : path_(std::move(path)), tmp_path_(TempPathFor(path_)) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

absl::Status AtomicFileWriter::Open() {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) return ErrnoStatus(errno, tmp_path_);
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Write(absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, tmp_path_);
    data.remove_prefix(static_cast<size_t>(n));
    written_ += static_cast<uint64_t>(n);
  }
#ifdef __linux__
  if (written_ - written_back_ >= kWritebackBytes) {
    // Advisory: an I/O error shows in Commit()'s fsync.
    ::sync_file_range(fd_, static_cast<off_t>(written_back_),
                      static_cast<off_t>(written_ - written_back_), SYNC_FILE_RANGE_WRITE);
    written_back_ = written_;
  }
#endif
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit(
    const std::function<absl::Status(const std::string& tmp_path)>& check) {
  if (::fsync(fd_) != 0) return ErrnoStatus(errno, tmp_path_);
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return ErrnoStatus(errno, tmp_path_);
  if (check) {
    if (absl::Status s = check(tmp_path_); !s.ok()) return s;
  }
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) return ErrnoStatus(errno, path_);
  committed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadPemFile(absl::string_view option, const std::string& path,
                                        PemKind kind) {
  absl::StatusOr<std::string> text = ReadFileToString(path, 1 << 20);
  if (!text.ok())
    return absl::InvalidArgumentError(absl::StrCat(option, ": ", text.status().message()));
  const bool key = kind == PemKind::kPrivateKey;
  const bool pem =
      key ? absl::StrContains(*text, "-----BEGIN ") && absl::StrContains(*text, "PRIVATE KEY-----")
          : absl::StrContains(*text, "-----BEGIN CERTIFICATE-----");
  if (!pem) {
    return absl::InvalidArgumentError(absl::StrCat(option, ": ", path, ": no PEM ",
                                                   key ? "private key" : "certificate", " in it"));
  }
  return text;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  AtomicFileWriter out(path);
  if (absl::Status s = out.Open(); !s.ok()) return s;
  if (absl::Status s = out.Write(contents); !s.ok()) return s;
  return out.Commit();
}

namespace {

int RemoveEntry(const char* path, const struct stat*, int type, struct FTW*) {
  return (type == FTW_DP ? ::rmdir(path) : ::unlink(path)) == 0 ? 0 : errno;
}

}  // namespace

absl::Status MakeDirectories(const std::string& path) {
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    std::string prefix = path.substr(0, pos);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, prefix);
    }
    if (pos == std::string::npos) return absl::OkStatus();
  }
}

absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, path);
  }
  int rc = ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) return ErrnoStatus(rc > 0 ? rc : errno, absl::StrCat(path, ": cannot remove"));
  return absl::OkStatus();
}

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

bool IsPlainFileName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos && name.find('\0') == absl::string_view::npos;
}

}  // namespace signround
