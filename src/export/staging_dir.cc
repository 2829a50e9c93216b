#include "src/export/staging_dir.h"

#include <stdio.h>
#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/export/export_source.h"

namespace signround {

absl::StatusOr<StagingDir> StagingDir::Create(const std::string& parent, const std::string& name) {
  if (!IsPlainFileName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("export directory name '", name, "' is not a plain file name"));
  }
  StagingDir dir(JoinPath(parent, absl::StrCat(".", name, ".partial")), JoinPath(parent, name));
  SR_RETURN_IF_ERROR(RemoveTree(dir.tmp_));
  SR_RETURN_IF_ERROR(MakeDirectories(dir.tmp_));
  return dir;
}

StagingDir::StagingDir(StagingDir&& other) noexcept
    : tmp_(std::move(other.tmp_)), final_(std::move(other.final_)), done_(other.done_) {
  other.done_ = true;
}

StagingDir::~StagingDir() {
  if (!done_) RemoveTree(tmp_).IgnoreError();
}

absl::Status StagingDir::Commit() {
  // An older export of the same name is moved aside first: rename() cannot
  // replace a non-empty directory.
  const std::string old = final_ + ".old";
  SR_RETURN_IF_ERROR(RemoveTree(old));
  struct stat st;
  if (::stat(final_.c_str(), &st) == 0 && ::rename(final_.c_str(), old.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", final_));
  }
  if (::rename(tmp_.c_str(), final_.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp_, " to ", final_));
  }
  done_ = true;
  return RemoveTree(old);
}

absl::Status CopyTokenizerFiles(const std::string& model_dir, const std::string& to) {
  for (const std::string& name : TokenizerFileNames()) {
    const std::string from = JoinPath(model_dir, name);
    struct stat st;
    if (::stat(from.c_str(), &st) != 0) continue;
    SR_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(from, uint64_t{1} << 30));
    SR_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(to, name), contents));
  }
  return absl::OkStatus();
}

}  // namespace signround
