// Small filesystem helpers that report errors as absl::Status with the path.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace signround {

// Opens a regular file read-only; returns the descriptor (the caller closes
// it) and stores its size. A directory or device is INVALID_ARGUMENT.
absl::StatusOr<int> OpenRegularFile(const std::string& path, uint64_t* size);

// Reads a whole regular file, refusing files larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes);

// The text of a PEM file (at most 1 MiB) that holds certificates or a private
// key, for TLS options. INVALID_ARGUMENT starting with `option` (the flag) and
// naming the path when it cannot be read or holds no such PEM block; the
// content is never part of a message.
enum class PemKind { kCertificates, kPrivateKey };
absl::StatusOr<std::string> ReadPemFile(absl::string_view option, const std::string& path,
                                        PemKind kind);

// Writes `contents` to `path` atomically: a temporary file beside it, fsync, rename.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// Streams a file into a temporary name beside `path`; Commit() fsyncs and
// renames it into place. Destroyed uncommitted, it removes the temporary file,
// so readers never see a half-written file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Open();
  // Appends `data`. Every kWritebackBytes, the kernel is asked to start writing the new
  // bytes to disk (sync_file_range, no waiting), so a large file's Commit() does not wait
  // for all of it and the dirty page cache stays small.
  absl::Status Write(absl::string_view data);
  // fsyncs and closes the temporary file, runs `check` on it (when given; an
  // error leaves nothing at `path`), then renames it into place.
  absl::Status Commit(
      const std::function<absl::Status(const std::string& tmp_path)>& check = nullptr);

 private:
  std::string path_;
  static constexpr uint64_t kWritebackBytes = uint64_t{32} << 20;
  std::string tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
  uint64_t written_ = 0;       // bytes appended
  uint64_t written_back_ = 0;  // bytes whose writeback was started
};

// An errno value as a Status: NOT_FOUND for ENOENT, PERMISSION_DENIED for EACCES, else INTERNAL.
absl::Status ErrnoStatus(int err, absl::string_view what);

// The unique temporary name used beside `path` while it is being written.
std::string TempPathFor(const std::string& path);

// mkdir -p: creates `path` and any missing parents; an existing directory is fine.
absl::Status MakeDirectories(const std::string& path);

// Removes `path` and, for a directory, everything below it (symbolic links
// are removed, not followed). A missing path is not an error.
absl::Status RemoveTree(const std::string& path);

// Joins a directory and a file name with one '/'.
std::string JoinPath(absl::string_view dir, absl::string_view name);

// True for a plain file name: not empty, no '/', not "." or "..", no NUL.
bool IsPlainFileName(absl::string_view name);

}  // namespace signround
